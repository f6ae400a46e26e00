"""The ``oneword playground`` options and the demo's short settings, with no heavy imports:
``oneword``'s parser reads them whatever command runs."""

from __future__ import annotations

import argparse

# Short inversion, so that the story runs in minutes on a laptop CPU (the service's default is
# 50 inversion steps); results are rougher. Learning keeps the service's cap of 600 steps: it
# stops earlier when its probe levels off (the sample creature after about 140 steps, the
# object 220), but the sample style often uses all 600, and at 400 it came out untinted.
# Measured on a 2-core CPU shared with other work: the whole scripted story ~2.5 minutes.
DEMO_LEARN_STEPS = 600
DEMO_INVERSION_STEPS = 25
DEFAULT_OUT = "runs/playground"


def add_options(parser: argparse.ArgumentParser) -> None:
    """Declare the subcommand's options on ``parser``."""
    parser.add_argument("--port", type=int, default=8080,
                        help="port of the chat page on 127.0.0.1 (0: any free port)")
    parser.add_argument("--data-dir", default=None,
                        help="the bot's and worker's data (default: a temporary folder)")
    parser.add_argument("--model", default=None,
                        help="a diffusers Stable Diffusion folder (default: the bundled model)")
    parser.add_argument("--script", action="store_true",
                        help="play the whole story without a browser and write a transcript")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"--script: where transcript.html and .json go ({DEFAULT_OUT})")
    parser.add_argument("--learn-steps", type=int, default=None,
                        help=f"learning steps (default: ONEWORD_LEARN_STEPS, else "
                             f"{DEMO_LEARN_STEPS})")
    parser.add_argument("--inversion-steps", type=int, default=None,
                        help=f"inversion steps (default: ONEWORD_INVERSION_STEPS, else "
                             f"{DEMO_INVERSION_STEPS})")
