"""The OneWord playground: the real bot and worker against a local Telegram, in a browser.

``oneword playground`` starts the local Bot API server (:mod:`botapi`), the bot and the worker
(the same ``oneword bot`` / ``oneword worker`` a deployment runs) and serves a Telegram-like
chat page on 127.0.0.1, so a newcomer can try OneWord without a token, a GPU or a network.
``oneword playground --script`` plays the whole story without a browser and writes a
transcript.

Modules: :mod:`playground.harness` (starting the local Telegram, the bot and the worker; the
tests start the service with it too), :mod:`playground.web` (the chat page's
server), :mod:`playground.story` (the scripted story), :mod:`playground.transcript` (writing
the conversation down), :mod:`playground.samples` (the bundled sample photos),
:mod:`playground.cli` (the subcommand), :mod:`playground.options` (its options and the demo's
short settings).
"""
