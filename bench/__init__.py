"""OneWord's benchmark: speed of every stage and edit quality against the sticker world's truth.

    make bench                    # the full CPU benchmark on the bundled model (< 20 minutes)
    python -m bench --quick       # a one-minute smoke run
    python -m bench --gpu         # also an SD 1.5-sized random model at 512 px on the GPU

Results go to bench/results/: latest.md (the tables), latest.json (every number) and a dated copy
of both. Every stage also reports its UNet evaluations (forward and backward, counted by hooks),
so a saving in work shows on any machine. Speed and memory targets are checked here, never by
timed unit tests.
"""
