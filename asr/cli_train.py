"""`asr train` and `asr export`: the commands that need torch (the `train` extra)."""
from __future__ import annotations

import json
import os
import sys

from .cli_options import EXIT_USAGE, error


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model from a recipe config",
                       description="Train a GRU-CTC model. Settings come from a YAML recipe (recipes/*/*.yaml) "
                                   "and key=value overrides (model.hidden_size=256 reaches nested keys). "
                                   "Multi-GPU: torchrun --nproc-per-node N -m asr train ...")
    p.add_argument("--config", "-c", metavar="YAML", help="recipe config file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    resume = p.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true",
                        help="continue from OUT_DIR/last.pt exactly where it stopped (an error if there is none)")
    resume.add_argument("--resume-if-any", action="store_true",
                        help="continue from OUT_DIR/last.pt where there is one, else start afresh (for scripts "
                             "that are run again after an interruption)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (on a terminal), no progress lines (to a file: one every 30 s)")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    import logging

    from .train import Trainer, load_config
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        cfg = load_config(args.config, args.overrides)
        last = os.path.join(cfg.out_dir, "last.pt")
        if args.resume and not os.path.exists(last):
            error(f"--resume: no checkpoint to resume from in {cfg.out_dir} ({last} does not exist); without "
                  f"--resume training starts afresh, --resume-if-any resumes only where there is one")
            return EXIT_USAGE
        resume = args.resume or (args.resume_if_any and os.path.exists(last))
        trainer = Trainer(cfg, resume=resume, device=args.device, progress=not args.no_progress)
    except (OSError, ValueError, TypeError) as err:
        error(str(err))
        return EXIT_USAGE
    summary = trainer.fit()
    if trainer.is_main:
        print(json.dumps(summary))
    return 0


# --------------------------------------------------------------------------- export
def add_export(sub) -> None:
    p = sub.add_parser("export", help="convert a model file or training checkpoint to the runtime form",
                       description="Write a model file that runs without torch, on ONNX Runtime: the weights and "
                                   "normalisation statistics as an ONNX graph, the mel filterbank, config and "
                                   "model card (docs/runtime.md). A language model the card names is copied "
                                   "beside it. Needs torch and onnx (pip install -e '.[train]').")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a model file (.pt) or training checkpoint")
    p.add_argument("-o", "--output", required=True, metavar="MODEL", help="the runtime model file to write")
    p.add_argument("--int8", action="store_true",
                   help="the GRU and the other large matrix products in int8 (per-channel weight scales, per-frame "
                        "activation scales): faster, a quarter of the weights' size; streaming stays exact "
                        "(docs/runtime.md). Without it: float, as the weights were saved")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from .export import export
    from .runtime import ModelError
    try:
        paths = export(args.checkpoint, args.output, int8=args.int8)
    except (ModelError, ImportError) as err:
        error(str(err))
        return EXIT_USAGE
    except OSError as err:
        error(f"{err.filename or args.output}: {err.strerror or err}")
        return EXIT_USAGE
    for path in paths:
        print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)")
    return 0
