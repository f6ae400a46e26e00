"""`oneword <command>`: the command line, above every other package (it may import them all).

`main` dispatches to the part of the project that owns each command; `learn_edit` holds the
engine's own commands, `oneword learn` and `oneword edit`.
"""
