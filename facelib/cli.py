"""The `facelib` command.

    facelib fetch [--variant lfw-deepfunneled]
    facelib preprocess [--detector haar|yunet] [--size 160] [--no-align] [--no-face fallback|skip]
                       [--limit N] [--preset smoke|cpu|gpu] [--workers N]
    facelib train [--preset smoke|cpu|gpu] [--name RUN] [--resume] [--epochs N] [--steps N]
                  [--p P] [--k K] [--lr X] [--margin X] [--mining random|batch_hard|batch_semihard] [--set KEY=VALUE] ...
    facelib evaluate [--model RUN|DIR] [--tta] [--view2|--no-view2] [--if-needed | --recalibrate]
    facelib verify A B [--model RUN|DIR] [--json] [--whole-image]
    facelib embed FILES... --out embeddings.npy [--model RUN|DIR]

A model is a folder, or a run name under models/ (`--name` of `facelib train`);
without --model, the newest trained one.

Errors print one line, `error: …`, on stderr and exit with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from facelib import config, datasets
from facelib.detection import DETECTORS
from facelib.errors import FacelibError


def import_tensorflow_quietly() -> None:
    """TensorFlow prints C++ start-up notes (CPU features, oneDNN) straight to file
    descriptor 2 while it loads; they would bury our one-line messages. Silence fd 2
    for the import only: a failing import still raises, after it is restored."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def cmd_fetch(args: argparse.Namespace) -> None:
    files = datasets.fetch_protocol_files()
    print(f"protocol files: {', '.join(files)} in {datasets.lfw_dir()}")
    images_root = datasets.fetch_lfw(args.variant)
    print(f"images: {images_root}")
    print(f"census: {datasets.census(images_root).summary()}")


def cmd_preprocess(args: argparse.Namespace) -> None:
    from facelib.preprocess import CropSettings, preprocess_dataset

    settings = CropSettings(
        detector=args.detector,
        size=args.size,
        margin=args.margin,
        align=args.align,
        no_face=args.no_face,
        five_point=args.five_point,
    )
    limit = args.limit if args.limit is not None else config.preset(args.preset).preprocess_limit
    images_root = datasets.fetch_lfw(args.variant)
    print(preprocess_dataset(images_root, settings, variant=args.variant, limit=limit, workers=args.workers))


def cmd_train(args: argparse.Namespace) -> None:
    from facelib.train import TrainConfig, default_run_name, strategy, train, train_or_resume

    preset = args.preset or config.preset().name
    overrides = {
        "epochs": args.epochs,
        "steps_per_epoch": args.steps,
        "p": args.p,
        "k": args.k,
        "learning_rate": args.lr,
        "schedule": args.schedule,
        "margin": args.margin,
        "mining": args.mining,
        "input_size": args.input_size,
        "embedding_dim": args.embedding_dim,
        "head": args.head,
        "weights": args.weights,
        "seed": args.seed,
        "crops": args.crops,
    }
    # A flag left out is None: the preset's value stays. --set values go through as given
    # (`--set max_identities=none` lifts the preset's limit) and win over the flags.
    cfg = TrainConfig.preset(preset, settings=TrainConfig.parse_settings(args.set or []), **overrides)
    name = args.name or default_run_name(cfg, preset)
    folder = train_or_resume(cfg, name) if args.resume else train(cfg, name)
    from facelib.model import read_card

    if not strategy().extended.should_checkpoint:  # a non-chief worker of a multi-worker run
        print(f"worker finished; the chief worker saves the model in {folder}")
        return
    history = read_card(folder)["history"]
    print(
        f"model: {folder}\n"
        f"  epochs {history['epochs']}, final loss {history['final_loss']:.4f}, "
        f"validation AUC {history['final_val_auc']:.4f} (best {history['best_val_auc']:.4f} "
        f"at epoch {history['best_epoch']}), peak memory {history['peak_rss_mb']:,.0f} MB"
    )


def cmd_evaluate(args: argparse.Namespace) -> None:
    from facelib.evaluate import evaluate_model, print_table
    from facelib.model import newest_model_folder, read_card, resolve_model_folder

    folder = resolve_model_folder(args.model) if args.model else newest_model_folder()
    if args.if_needed:
        card = read_card(folder)
        if "threshold" in card:
            print(
                f"{folder.name} is already evaluated (threshold {card['threshold']:.4f} in its card); "
                "skipping (run without --if-needed to evaluate it again)"
            )
            return
    view2 = args.view2
    if view2 is None:
        preset = config.preset()
        view2 = preset.evaluate_view2
        if not view2:  # say so: a View 1-only report must not pass for the full one
            print(f"View 2 skipped: the {preset.name} preset evaluates View 1 only (--view2 adds it)")
    evaluation = evaluate_model(folder, tta=args.tta, view2=view2, recalibrate=args.recalibrate)
    print_table(evaluation)
    print(f"  {evaluation.threshold_note}")
    print(f"  figures and metrics.json in {Path(evaluation.model) / 'eval'}")


def cmd_verify(args: argparse.Namespace) -> None:
    from facelib.verification import FaceVerifier

    verifier = FaceVerifier(args.model, no_face="whole" if args.whole_image else "error")
    result = verifier.verify(args.image1, args.image2)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    verdict = "same person" if result.same_person else "different people"
    print(f"distance {result.distance:.4f}  threshold {result.threshold:.4f}  →  {verdict}")
    for path, face in zip((args.image1, args.image2), result.faces, strict=True):
        where = "centre of the picture (no face found)" if face.whole_image else f"face at {face.box}"
        extra = (
            f", {face.faces_found} faces found: kept the largest, most central"
            if face.faces_found > 1
            else ""
        )
        print(f"  {path}: {where}{extra}")
    print(f"  model {result.model}, detector {result.detector}, {result.timings_ms['total']:.0f} ms")


def cmd_embed(args: argparse.Namespace) -> None:
    import numpy as np

    from facelib.verification import FaceVerifier

    verifier = FaceVerifier(args.model)
    embeddings = verifier.embed(args.files)
    np.save(args.out, embeddings)
    print(f"{embeddings.shape[0]} embeddings of {embeddings.shape[1]} numbers → {args.out}")


MODEL_HELP = "model folder, or run name under models/ (default: the newest there)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facelib", description="Face verification trained on LFW.")
    verbs = parser.add_subparsers(dest="verb", required=True)

    fetch = verbs.add_parser(
        "fetch", help="download (or copy from FACELIB_MIRROR) LFW and its protocol files"
    )
    fetch.add_argument("--variant", choices=list(datasets.VARIANTS), default=datasets.default_variant())
    fetch.set_defaults(run=cmd_fetch)

    prep = verbs.add_parser("preprocess", help="detect, crop and resize every face into data/processed/")
    prep.add_argument("--variant", choices=list(datasets.VARIANTS), default=datasets.default_variant())
    prep.add_argument("--detector", choices=list(DETECTORS), default="haar")
    prep.add_argument("--size", type=int, default=160, help="side of the stored square crops (pixels)")
    prep.add_argument("--margin", type=float, default=0.2, help="margin around the face box, as a fraction")
    prep.add_argument("--no-align", dest="align", action="store_false", help="do not level the eyes")
    prep.add_argument(
        "--five-point",
        action="store_true",
        help="warp the 5 landmarks (yunet) onto a canonical layout; crops go to <…>-5pt",
    )
    prep.add_argument("--no-face", choices=list(config.NO_FACE_POLICIES), default="fallback")
    prep.add_argument("--limit", type=int, help="only the first N images (default: the preset's)")
    prep.add_argument("--preset", choices=list(config.PRESETS), help="default: $FACELIB_PRESET or cpu")
    prep.add_argument("--workers", type=int, help="processes (default: one per core)")
    prep.set_defaults(run=cmd_preprocess)

    tr = verbs.add_parser("train", help="train the embedding network with triplet loss")
    tr.add_argument("--preset", choices=list(config.PRESETS), help="default: $FACELIB_PRESET or cpu")
    tr.add_argument("--name", help="run name: the folder under models/ (default: <preset>-<mining>-<size>)")
    tr.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from its last epoch (or start it, or report it done "
        "if it finished with the same settings)",
    )
    tr.add_argument("--epochs", type=int)
    tr.add_argument("--steps", type=int, help="steps per epoch")
    tr.add_argument("--p", type=int, help="identities per batch")
    tr.add_argument("--k", type=int, help="images per identity")
    tr.add_argument("--lr", type=float, help="peak learning rate")
    tr.add_argument("--schedule", choices=list(config.SCHEDULES))
    tr.add_argument("--margin", type=float)
    tr.add_argument("--mining", choices=list(config.MINING_MODES))
    tr.add_argument("--input-size", type=int, help="model input side in pixels (112, 160, 224)")
    tr.add_argument("--embedding-dim", type=int)
    tr.add_argument("--head", choices=list(config.HEADS), help="relu: the seed's unnormalised embedding")
    tr.add_argument("--weights", help='"imagenet" (needs internet) or a facelib model folder')
    tr.add_argument("--seed", type=int)
    tr.add_argument("--crops", help="crop folder under data/processed/")
    tr.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="any training setting, e.g. --set bfloat16=true --set classifier=cosface (see TrainConfig)",
    )
    tr.set_defaults(run=cmd_train)

    ev = verbs.add_parser(
        "evaluate", help="score a model on LFW View 1 (and View 2) and calibrate its threshold"
    )
    ev.add_argument("--model", help=MODEL_HELP)
    ev.add_argument("--tta", action="store_true", help="also report test-time augmentation (mirror image)")
    ev.add_argument(
        "--view2",
        action=argparse.BooleanOptionalAction,
        help="also score View 2 (default: yes, but View 1 only under the smoke preset)",
    )
    again = ev.add_mutually_exclusive_group()
    again.add_argument(
        "--if-needed", action="store_true", help="skip a model that already has a calibrated threshold"
    )
    again.add_argument(
        "--recalibrate",
        action="store_true",
        help="replace the model's calibrated threshold with this evaluation's (default: keep it)",
    )
    ev.set_defaults(run=cmd_evaluate)

    ve = verbs.add_parser("verify", help="are two pictures the same person?")
    ve.add_argument("image1")
    ve.add_argument("image2")
    ve.add_argument("--model", help=MODEL_HELP)
    ve.add_argument("--json", action="store_true", help="print the full result as JSON")
    ve.add_argument(
        "--whole-image",
        action="store_true",
        help="when no face is found, use the centre of the picture (the crop training used for such pictures)",
    )
    ve.set_defaults(run=cmd_verify)

    em = verbs.add_parser("embed", help="embeddings of the face in each picture, to a .npy file")
    em.add_argument("files", nargs="+")
    em.add_argument("--out", required=True, help="output .npy file")
    em.add_argument("--model", help=MODEL_HELP)
    em.set_defaults(run=cmd_embed)
    return parser


def interrupted_message(args: argparse.Namespace) -> str:
    """What Ctrl-C leaves, and how to go on, for the command that was stopped."""
    if args.verb == "train":
        # A plain `facelib train` refuses a folder holding an interrupted run: --resume.
        return "interrupted; run it again with --resume to continue from the last finished epoch"
    if args.verb in ("preprocess", "fetch"):
        return "interrupted; run the same command again to continue"
    return "interrupted"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verb in ("train", "evaluate", "verify", "embed"):
        import_tensorflow_quietly()
    try:
        args.run(args)
    except FacelibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"error: {interrupted_message(args)}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
