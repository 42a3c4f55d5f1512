"""The `facelib` command.

    facelib fetch [--variant lfw-deepfunneled]
    facelib preprocess [--detector yunet|haar] [--size 160] [--no-align] [--no-face fallback|skip]
                       [--limit N] [--preset smoke|cpu|cpu-v1|gpu] [--workers N]
    facelib preprocess --images FOLDER [--out DIR] [--detector yunet|haar] [--size 160] ...
    facelib train [--preset smoke|cpu|cpu-v1|gpu] [--name RUN] [--resume] [--minutes M | --steps N] [--epochs N]
                  [--p P] [--k K] [--lr X] [--margin X] [--mining random|batch_hard|batch_semihard] [--set KEY=VALUE] ...
                  [--images FOLDER ... [--with-lfw]] [--init-from MODEL [--freeze-until stage3]]
    facelib evaluate [--model RUN|DIR] [--tta] [--view2|--no-view2] [--if-needed | --recalibrate]
    facelib evaluate --robustness [--model RUN|DIR] [--degradations lighting,blur,...] [--tta]
    facelib evaluate --images FOLDER [--pairs FILE] [--model RUN|DIR] [--calibration NAME] [--held-out-of RUN]
    facelib verify A B [--model RUN|DIR] [--json] [--whole-image] [--calibration NAME]
                   [--runtime auto|keras|onnxruntime|tflite]
    facelib embed FILES... --out embeddings.npy [--model RUN|DIR]
    facelib enroll NAME PHOTO|DIR... [--gallery DIR] [--model RUN|DIR] [--replace] [--force]
    facelib identify PHOTO|DIR... [--gallery DIR | --known FOLDER] [--model RUN|DIR] [--json]
                     [--fpir 0.01] [--margin 0.0] [--mode min|mean] [--calibration NAME]
    facelib calibrate --images FOLDER [--name NAME] [--model RUN|DIR]
    facelib export RUN|DIR --format savedmodel|tflite|onnx [--int8] [--out DIR]
    facelib doctor [--preset NAME] [--no-timing]

A model is a folder, or a run name under models/ (`--name` of `facelib train`);
without --model, the newest trained one. A FOLDER of pictures is laid out as LFW:
one subfolder per person (FOLDER/Ada/1.jpg, FOLDER/Grace/1.jpg); pictures where no
face is found are skipped and counted. A folder given as a PHOTO stands for the
pictures in it. The gallery is $FACELIB_HOME/gallery unless --gallery says otherwise.
A calibration NAME is one `facelib calibrate` saved in the model folder; without
one, the model card's (the LFW View 1 threshold, the validation people's impostor curve).

Errors print one line, `error: …`, on stderr and exit with status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from facelib.app import doctor
from facelib.core import config, machine
from facelib.core.errors import FacelibError, RunFolderError
from facelib.core.files import check_name
from facelib.data import datasets, folders
from facelib.data.detection import DETECTORS
from facelib.data.preprocess import CropSettings, preprocess_dataset
from facelib.evaluation.evaluate import evaluate_model, print_table
from facelib.evaluation.robustness import REPORT, robustness_report
from facelib.recognition import reports, verification
from facelib.recognition.calibration import (
    CALIBRATION_PEOPLE,
    CALIBRATION_PICTURES,
    calibration_path,
    require_calibration_pictures,
)
from facelib.recognition.card import ModelCard
from facelib.recognition.export import FORMATS, RUNTIMES
from facelib.recognition.gallery import Gallery, model_id
from facelib.recognition.identification import DEFAULT_FPIR, TEMPLATE_MODES
from facelib.recognition.verification import DEFAULT_RUNTIME
from facelib.training.training_config import FREEZE_POINTS


def cmd_fetch(args: argparse.Namespace) -> None:
    files = datasets.fetch_protocol_files()
    print(f"protocol files: {', '.join(files)} in {datasets.lfw_dir()}")
    images_root = datasets.fetch_lfw(args.variant)
    print(f"images: {images_root}")
    print(f"census: {datasets.census(images_root).summary()}")


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def cmd_preprocess(args: argparse.Namespace) -> None:
    if args.out and not args.images:
        raise FacelibError(
            "--out goes with --images: LFW's crops go to data/processed/, where training looks for them"
        )
    settings = CropSettings(
        detector=args.detector or config.preset(args.preset).detector,
        size=args.size,
        margin=args.margin,
        align=args.align,
        no_face=args.no_face,
        five_point=args.five_point,
        equalize=args.equalize,
    )
    if args.images:
        people = folders.list_people(args.images)
        for message in people.warnings:
            warn(message)
        # All of the folder's pictures: the preset's limit is for LFW (only --limit cuts here).
        summary, _, left_out = folders.preprocess_folder(
            people, settings, out_root=args.out, workers=args.workers, limit=args.limit
        )
        for message in left_out:
            warn(message)
        print(summary)
        return
    limit = args.limit if args.limit is not None else config.preset(args.preset).preprocess_limit
    images_root = datasets.fetch_lfw(args.variant)
    print(preprocess_dataset(images_root, settings, variant=args.variant, limit=limit, workers=args.workers))


def cmd_train(args: argparse.Namespace) -> None:
    from facelib.training.train import strategy, train, train_or_resume
    from facelib.training.training_config import TrainConfig, default_run_name

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
        "minutes": args.minutes,
    }
    # A flag left out is None: the preset's value stays. --set values go through as given
    # (`--set max_identities=none` lifts the preset's limit) and win over the flags.
    settings = TrainConfig.parse_settings(args.set or [])
    if args.steps is not None or "steps_per_epoch" in settings:
        # Steps given: a fixed length, unless a budget is given too, which fixes its own.
        if args.minutes is not None or settings.get("minutes") is not None:
            raise FacelibError("give --minutes or --steps, not both: a budget fixes the steps itself")
        settings.setdefault("minutes", None)
    if args.images:
        overrides["images"] = tuple(str(Path(folder).expanduser().resolve()) for folder in args.images)
        overrides["lfw_people"] = args.with_lfw
    elif args.with_lfw:
        raise FacelibError("--with-lfw goes with --images (LFW's people are the default data)")
    overrides["freeze_until"] = args.freeze_until
    if args.init_from:
        if args.weights:
            raise FacelibError("give --init-from or --weights, not both")
        overrides.update(fine_tune_overrides(args, preset, overrides, settings))
    cfg = TrainConfig.preset(preset, settings=settings, **overrides)
    name = args.name or default_run_name(cfg, preset)
    folder = train_or_resume(cfg, name) if args.resume else train(cfg, name)
    if not strategy().extended.should_checkpoint:  # a non-chief worker of a multi-worker run
        print(f"worker finished; the chief worker saves the model in {folder}")
        return
    history = ModelCard.load(folder).history
    print(
        f"model: {folder}\n"
        f"  epochs {history['epochs']}, final loss {history['final_loss']:.4f}, "
        f"validation AUC {history['final_val_auc']:.4f} (best {history['best_val_auc']:.4f} "
        f"at epoch {history['best_epoch']}), peak memory {history['peak_rss_mb']:,.0f} MB"
    )


def fine_tune_overrides(args: argparse.Namespace, preset: str, overrides: dict, settings: dict) -> dict:
    """--init-from: the model's folder as the weights, and the fine-tune's short schedule
    and the model's shape wherever no flag or --set says otherwise."""
    from facelib.recognition.model import resolve_model_folder  # Keras
    from facelib.training.training_config import TrainConfig, fine_tune_settings

    folder = resolve_model_folder(args.init_from)
    card = ModelCard.load(folder)
    base = TrainConfig.preset(preset, settings=settings, **overrides)
    defaults = fine_tune_settings(base, card.to_dict())
    given = {k for k, v in overrides.items() if v is not None} | set(settings)
    if "steps_per_epoch" in given:
        defaults.pop("minutes", None)  # fixed steps asked for: no budget
    chosen = {k: v for k, v in defaults.items() if k not in given}
    return {**chosen, "weights": str(folder.resolve())}


def evaluate_robustness(args: argparse.Namespace) -> None:
    """The robustness suite on validation pairs: no test pair is scored."""
    others = [
        flag
        for flag, given in [
            ("--view2/--no-view2", args.view2 is not None),
            ("--if-needed", args.if_needed),
            ("--recalibrate", args.recalibrate),
            ("--images", args.images),
            ("--pairs", args.pairs),
            ("--held-out-of", args.held_out_of),
            ("--calibration", args.calibration),
        ]
        if given
    ]
    if others:
        raise FacelibError(f"{', '.join(others)}: not with --robustness (it scores validation pairs only)")
    names = [n.strip() for n in args.degradations.split(",") if n.strip()] if args.degradations else None
    report = robustness_report(args.model, degradations=names, tta=args.tta)
    print(report.table())
    if names is None and not args.tta:
        print(f"  saved in {Path(report.model) / 'eval' / REPORT} ({report.seconds:.0f} s)")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from facelib.recognition.model import newest_model_folder, resolve_model_folder  # Keras

    if args.robustness:
        evaluate_robustness(args)
        return
    if args.degradations:
        raise FacelibError("--degradations goes with --robustness")
    if args.images:
        lfw_only = [
            flag
            for flag, given in [
                ("--tta", args.tta),
                ("--view2/--no-view2", args.view2 is not None),
                ("--if-needed", args.if_needed),
                ("--recalibrate", args.recalibrate),
            ]
            if given
        ]
        if lfw_only:
            raise FacelibError(f"{', '.join(lfw_only)}: LFW evaluation only, not with --images")
        evaluate_folder(args)
        return
    if args.pairs or args.calibration or args.held_out_of:
        raise FacelibError("--pairs, --calibration and --held-out-of go with --images FOLDER")
    folder = resolve_model_folder(args.model) if args.model else newest_model_folder()
    if args.if_needed:
        card = ModelCard.load(folder)
        if card.threshold is not None:
            print(
                f"{folder.name} is already evaluated (threshold {card.threshold:.4f} in its card); "
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


def percent(x: float) -> str:
    return f"{100 * x:.1f}%"


def evaluate_folder(args: argparse.Namespace) -> None:
    """`facelib evaluate --images FOLDER [--pairs FILE]`: verification and identification
    figures on your own pictures, at the model's threshold. The card is not touched."""
    people = folders.list_people(args.images)
    for message in people.warnings:
        warn(message)
    if args.held_out_of:
        people = held_out_people(people, args.held_out_of)
    report = reports.evaluate_folder(make_verifier(args), people, args.pairs)
    for message in report.warnings:
        warn(message)
    print(f"model {report.model}: {report.people:,} people, {report.pictures:,} pictures of {report.root}")
    if report.skipped:
        dropped = report.dropped_pairs
        with_them = f"; {dropped} pair{'s' if dropped != 1 else ''} dropped with them" if dropped else ""
        print(f"  {report.skipped}{with_them}")
    far_note = (
        f" (with {report.different_pairs} different pairs, FAR 1e-2 allows no false accept)"
        if report.different_pairs < 100
        else ""
    )
    print(f"verification: {report.pairs}, {report.scored}")
    print(
        f"  AUC {report.auc:.4f}, EER {percent(report.eer)}, "
        f"TAR@FAR=1e-2 {percent(report.tar_at_far_1e2)}{far_note}"
    )
    print(
        f"  balanced accuracy {percent(report.balanced_accuracy)} at the model's threshold "
        f"{report.threshold:.4f} ({report.threshold_source})"
    )
    print_folder_identification(report.identification)
    print(f"the model card is unchanged ({report.card})")


def held_out_people(people: folders.PeopleFolder, run: str) -> folders.PeopleFolder:
    """The people of the folder that the run held out for validation (never trained on),
    as its card lists them for this folder."""
    from facelib.recognition.model import resolve_model_folder  # Keras

    card = ModelCard.load(resolve_model_folder(run))
    root = str(Path(people.root).resolve())
    for source in card.data_sources:
        if source.get("kind") == "folder" and source.get("root") == root:
            names = [n for n in source.get("validation_people", []) if n in people.people]
            if len(names) < 2:
                raise FacelibError(f"fewer than two of {card.name}'s held-out people of {root} are in it")
            print(f"the {len(names)} people {card.name} held out of {root} (never trained on)")
            return folders.PeopleFolder(people.root, {n: people.people[n] for n in names}, people.warnings)
    trained_on = [s.get("root") for s in card.data_sources if s.get("kind") == "folder"]
    raise FacelibError(
        f"{card.name} was not trained on {root}"
        + (f" (its folders: {', '.join(trained_on)})" if trained_on else " (it was trained on no folder)")
    )


def print_folder_identification(figures: reports.FolderIdentification | None) -> None:
    if figures is None:
        print("identification: not measured: nobody has two pictures where a face is found")
        return
    strangers = figures.strangers
    print(
        f"identification: {figures.enrolled} people enrolled (one seeded picture each), "
        f"{figures.mated} mated probes (their other pictures), "
        f"{strangers} stranger{'s' if strangers != 1 else ''} (people with one picture)"
    )
    if not strangers:
        print(
            f"  rank-1 {percent(figures.rank1)}; DIR can't be measured: no strangers "
            "(add people with a single picture)"
        )
        return
    print(
        f"  rank-1 {percent(figures.rank1)}, DIR {percent(figures.dir[0.01])} at FPIR 1% and "
        f"{percent(figures.dir[0.1])} at FPIR 10% (thresholds from the strangers' nearest distances)"
    )
    if strangers < 100:
        print(
            f"  with {strangers} strangers the smallest FPIR that can be measured is "
            f"1/{strangers}: the 1% figure is really at that rate"
        )


def make_verifier(args: argparse.Namespace, **options):
    """The model of --model (the newest without it), with --calibration when given."""
    calibration = getattr(args, "calibration", None)
    if calibration is not None:  # a blank one is refused ("give the calibration a name"), not ignored
        options["calibration"] = calibration
    return verification.FaceVerifier(args.model, **options)  # looked up here: tests replace it


def cmd_verify(args: argparse.Namespace) -> None:
    options = {"runtime": args.runtime} if args.runtime else {}
    verifier = make_verifier(args, no_face="whole" if args.whole_image else "error", **options)
    result = verifier.verify(args.image1, args.image2)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    verdict = "same person" if result.same_person else "different people"
    confidence = f"  (P(same person) {100 * result.confidence:.0f}%)" if result.confidence is not None else ""
    print(f"distance {result.distance:.4f}  threshold {result.threshold:.4f}  →  {verdict}{confidence}")
    for path, face in zip((args.image1, args.image2), result.faces, strict=True):
        where = "centre of the picture (no face found)" if face.whole_image else f"face at {face.box}"
        extra = (
            f", {face.faces_found} faces found: kept the largest, most central"
            if face.faces_found > 1
            else ""
        )
        conditions = (
            f"; outside the threshold's conditions: {', '.join(face.conditions)}" if face.conditions else ""
        )
        quality = (
            f"; quality {face.quality.summary()}" if face.quality and face.quality.status != "pass" else ""
        )
        print(f"  {path}: {where}{extra}{conditions}{quality}")
    if result.caveats:
        print(
            "  thresholds are measured on evenly lit, frontal faces: a verdict on a picture outside "
            "those conditions is less reliable (facelib evaluate --robustness measures how much)"
        )
    # P(same person) at this distance, with pairs of either kind equally likely beforehand
    print(f"  confidence: {result.confidence_source or result.confidence_note}")
    print(
        f"  model {result.model} ({result.runtime}), detector {result.detector}, "
        f"{result.timings_ms['total']:.0f} ms"
    )
    print(f"  threshold {result.threshold:.4f}: {result.threshold_source}")


def cmd_embed(args: argparse.Namespace) -> None:
    verifier = verification.FaceVerifier(args.model)
    embeddings = verifier.embed(args.files)
    np.save(args.out, embeddings)
    print(f"{embeddings.shape[0]} embeddings of {embeddings.shape[1]} numbers → {args.out}")


def load_gallery(args: argparse.Namespace, verifier):
    return Gallery.load(
        model_id(verifier.folder, verifier.card), Path(args.gallery) if args.gallery else None
    )


def cmd_enroll(args: argparse.Namespace) -> None:
    name = check_name(args.name)  # before the model loads: a bad name fails at once
    args.photos = folders.expand_pictures(
        args.photos,
        "enroll one person at a time, e.g. `facelib enroll NAME {folder}/NAME`",
    )
    verifier = make_verifier(args)
    gallery = load_gallery(args, verifier)  # a damaged gallery fails before the work
    report = reports.enroll_pictures(verifier, gallery, name, args.photos, args.replace, args.force)
    n = len(report.enrolled)
    replaced = " (replacing the earlier ones)" if args.replace else ""
    count = report.templates[name]
    print(
        f"enrolled {name}: {n} picture{'s' if n > 1 else ''}{replaced}; {name} now has "
        f"{count} template{'s' if count > 1 else ''}"
    )
    for path, quality in zip(report.enrolled, report.qualities, strict=True):
        if quality is not None and quality.status != "pass":
            forced = " (enrolled anyway: --force)" if quality.status == "fail" else ""
            print(f"  {path.name}: quality {quality.summary()}{forced}")
    for refused in report.refused:
        print(
            f"  {refused.path.name}: not enrolled, quality {refused.quality.summary()}; --force enrolls it anyway"
        )
    if report.skipped:
        print(f"  {report.skipped}")
    people = ", ".join(f"{person} ({rows})" for person, rows in report.templates.items())
    print(f"  gallery {gallery.folder}: {people}; model {gallery.model_id}")
    if gallery.foreign():
        print(f"  {len(gallery.foreign())} templates made by other models are kept there but not used")


def cmd_identify(args: argparse.Namespace) -> None:
    if not 0 < args.fpir < 1:
        raise FacelibError(f"--fpir is a rate between 0 and 1 (0.01: 1% of strangers named), not {args.fpir}")
    if args.margin < 0:
        raise FacelibError(f"--margin is a distance, 0 or more, not {args.margin}")
    args.photos = folders.expand_pictures(
        args.photos,
        "use --known {folder} to compare against them, or give person folders or pictures as probes",
    )
    people = None
    if args.known:  # a folder with nobody in it fails before the model loads
        people = folders.list_people(args.known)
        for message in people.warnings:
            warn(message)
    verifier = make_verifier(args)
    known = reports.known_people(verifier, people, Path(args.gallery) if args.gallery else None)
    for message in known.warnings:
        warn(message)
    report = reports.identify_pictures(verifier, args.photos, known, args.fpir, args.margin, args.mode)
    if report.mean_of_several:
        warn(
            "--mode mean: a mean template sits closer to everyone than the single pictures the "
            "calibration measured, so more strangers than --fpir get a name (bench/open_set.py on "
            "validation people: 23% at a 10% target); --mode min keeps the calibration"
        )
    if report.unmeasurable:
        warn(str(report.unmeasurable))
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return
    print_identification(report)


def print_identification(report: reports.IdentifyReport) -> None:
    rule = report.rule
    lead = f", and lead the runner-up by {rule.margin:g}" if rule.margin > 0 else ""
    print(
        f"{report.people} people ({report.templates} templates, {rule.mode} distance) from {report.where}; "
        f"calibration {report.calibration!r} ({rule.curve.source}): a name needs distance < "
        f"{report.threshold:.4f}{lead} (FPIR {100 * rule.fpir:g}%: strangers named)"
    )
    for r in report.results:
        if r.decision is None:
            print(f"{r.picture}: skipped: {r.explanation}")
            continue
        decision = r.decision
        runner_up = decision.runner_up
        second = f", runner-up {runner_up.name} {runner_up.distance:.4f}" if runner_up else ""
        several = f", {r.faces} faces: kept the largest, most central" if r.faces > 1 else ""
        # the nearest person taken as a 1:1 pair, by the calibration's confidence mapping
        sure = (
            f", P(same person as the nearest) {100 * r.confidence:.0f}%" if r.confidence is not None else ""
        )
        print(
            f"{r.picture}: {decision.name or 'unknown'} (distance {decision.distance:.4f}{second}{several}{sure})"
        )
        print(f"  {r.explanation}")
        if r.quality is not None and r.quality.status != "pass":
            print(f"  quality {r.quality.summary()}")
    if report.skipped:
        print(report.skipped)


def cmd_calibrate(args: argparse.Namespace) -> None:
    # The name is checked before anything loads: blank, 'lfw' (the card's) or like a path fails at once.
    name = args.name if args.name is not None else Path(args.images).expanduser().resolve().name
    calibration_path(Path(), name)  # raises for a bad name; the folder does not matter here
    people = folders.list_people(args.images)
    for message in people.warnings:
        warn(message)
    require_calibration_pictures([len(paths) for paths in people.people.values()], people.root)
    report = reports.calibrate_folder(make_verifier(args), people, name)
    for message in report.warnings:
        warn(message)
    calibration = report.calibration
    name = calibration.name
    print(
        f"calibration {name!r} of {report.model}: {report.people} people, {report.pictures} pictures; {report.pairs}"
    )
    if report.skipped:
        print(f"  {report.skipped}")
    print(
        f"  threshold {calibration.threshold:.4f} (balanced accuracy {percent(report.balanced_accuracy)} "
        f"on these pairs; the model's own: {report.model_threshold:.4f}, {report.model_threshold_source})"
    )
    print(
        f"  AUC {report.auc:.4f}, EER {percent(report.eer)}; "
        f"open-set curve from {calibration.curve.pairs:,} different-person distances"
    )
    if calibration.confidence is not None:
        print(f"  confidence: {calibration.confidence.describe()}")
    else:
        print(f"  {calibration.confidence_note}")
    print(f"  {'replaced' if report.replaced else 'saved'}: {report.path}")
    print(f"  use it: facelib verify A B --calibration {name}; facelib identify PHOTO… --calibration {name}")


MODEL_HELP = "model folder, or run name under models/ (default: the newest there)"
CALIBRATION_HELP = (
    "a calibration made by `facelib calibrate` (default: the model card's: "
    "the LFW View 1 threshold and the validation people's impostor curve)"
)


def cmd_export(args: argparse.Namespace) -> None:
    from facelib.recognition.export import export_model  # Keras

    result = export_model(args.model, args.format, int8=args.int8, out=args.out)
    info = result.info
    if info.check_crops:
        agreement = f"max |difference| {info.max_abs_diff:.1e}, lowest cosine {info.min_cosine:.4f}"
        print(f"checked against Keras on {info.check_crops} training-side crops: {agreement}")
    else:
        print("not checked against Keras: the training crops are not here (facelib preprocess)")
    print(f"{info.format}{' int8' if info.int8 else ''} export of {args.model} → {result.folder}")
    print(
        f"  {info.model_file} + card.json + export.json; input N×{info.input_size}×{info.input_size}×3 "
        f"float32 RGB 0–255 (the crop's centre 90%, resized), output N×{info.embedding_dim}"
    )
    print(f"  {info.converter}; {info.seconds:.0f} s")


def cmd_doctor(args: argparse.Namespace) -> None:
    print(doctor.report(args.preset, timing=args.timing))


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
    prep.add_argument(
        "--detector", choices=list(DETECTORS), help="default: the preset's (yunet; haar for cpu-v1)"
    )
    prep.add_argument("--size", type=int, default=160, help="side of the stored square crops (pixels)")
    prep.add_argument("--margin", type=float, default=0.2, help="margin around the face box, as a fraction")
    prep.add_argument("--no-align", dest="align", action="store_false", help="do not level the eyes")
    prep.add_argument(
        "--five-point",
        action="store_true",
        help="warp the 5 landmarks (yunet) onto a canonical layout; crops go to <…>-5pt",
    )
    prep.add_argument(
        "--equalize",
        action="store_true",
        help="equalise each crop's lightness in tiles (CLAHE); crops go to <…>-eq. Train on them with "
        "--set crops=<that folder> --set augmentation=basic (tried: no gain under side light, docs/recipes.md)",
    )
    prep.add_argument("--no-face", choices=list(config.NO_FACE_POLICIES), default="fallback")
    prep.add_argument("--limit", type=int, help="only the first N images (default: the preset's)")
    prep.add_argument("--preset", choices=list(config.PRESETS), help="default: $FACELIB_PRESET or cpu")
    prep.add_argument("--workers", type=int, help="processes (default: one per core)")
    prep.add_argument(
        "--images",
        metavar="FOLDER",
        help="crop your own folder of person/*.jpg instead of LFW (other pictures are left out, with a warning)",
    )
    prep.add_argument(
        "--out",
        metavar="DIR",
        help="with --images: write the crops and manifest.csv here (default: "
        "data/processed/images-<FOLDER>-<detector>-<size>[-5pt][-eq]; the images- prefix keeps a folder "
        "named like an LFW variant out of LFW's crops)",
    )
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
    tr.add_argument(
        "--steps", type=int, help="steps per epoch: a fixed length, instead of the preset's budget"
    )
    tr.add_argument(
        "--minutes",
        type=float,
        help="train for about this long: the run times its steps, then fixes their number "
        "(the cpu preset has a budget of its own; --set minutes=none trains --epochs × --steps)",
    )
    tr.add_argument("--p", type=int, help="identities per batch")
    tr.add_argument("--k", type=int, help="images per identity")
    tr.add_argument("--lr", type=float, help="peak learning rate")
    tr.add_argument("--schedule", choices=list(config.SCHEDULES))
    tr.add_argument("--margin", type=float)
    tr.add_argument("--mining", choices=list(config.MINING_MODES))
    tr.add_argument(
        "--input-size", type=int, help="model input side in pixels (64 in the cpu preset; 112, 160, 224)"
    )
    tr.add_argument("--embedding-dim", type=int)
    tr.add_argument("--head", choices=list(config.HEADS), help="relu: the seed's unnormalised embedding")
    tr.add_argument("--weights", help='"imagenet" (needs internet) or a facelib model folder')
    tr.add_argument(
        "--images",
        action="append",
        metavar="FOLDER",
        help="train on your own folder of people (FOLDER/<Person>/*.jpg, as preprocess --images reads); "
        "repeat for several folders. Alone, unless --with-lfw. Each folder holds out its own "
        "validation people; crops are made with the model's crop policy and cached under "
        "data/processed/images-<FOLDER>-<detector>-<size>[-5pt][-eq]/",
    )
    tr.add_argument(
        "--with-lfw",
        action="store_true",
        help="with --images: train on LFW's View 1 training people as well",
    )
    tr.add_argument(
        "--init-from",
        metavar="MODEL",
        help="fine-tune a trained model (a run name or model folder): the same embedding network, the "
        "triplet loss alone, basic augmentation and a short schedule (a tenth of the learning rate, a "
        "third of the epochs, a quarter of the budget); its input size and crop policy are kept",
    )
    tr.add_argument(
        "--freeze-until",
        choices=list(FREEZE_POINTS),
        help="with --init-from: keep the backbone's stages up to this one as they are (stage3: the "
        "stem, stage2 and stage3)",
    )
    tr.add_argument("--seed", type=int)
    tr.add_argument("--crops", help="crop folder under data/processed/")
    tr.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="any training setting, e.g. --set precision=float32 --set classifier=cosface (see TrainConfig)",
    )
    tr.set_defaults(run=cmd_train)

    ev = verbs.add_parser(
        "evaluate", help="score a model on LFW View 1 (and View 2) and calibrate its threshold"
    )
    ev.add_argument("--model", help=MODEL_HELP)
    ev.add_argument(
        "--tta",
        action="store_true",
        help="also report test-time augmentation (mirror image); with --robustness, the suite with it instead",
    )
    ev.add_argument(
        "--robustness",
        action="store_true",
        help="instead of LFW's test pairs: the validation pairs with one picture degraded (lighting, "
        "scale, blur, jpeg, rotation, turn, tight, loose, offset), a row each",
    )
    ev.add_argument(
        "--degradations",
        metavar="NAMES",
        help="with --robustness: only these rows, comma-separated (the report is then not saved)",
    )
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
    ev.add_argument(
        "--images",
        metavar="FOLDER",
        help="score your own folder of person/*.jpg instead of LFW (the card is not changed)",
    )
    ev.add_argument(
        "--pairs",
        metavar="FILE",
        help="with --images: the pairs to score, in LFW's pairs.txt format (default: all same-person "
        "pairs and as many different-person ones)",
    )
    ev.add_argument("--calibration", metavar="NAME", help="with --images: " + CALIBRATION_HELP)
    ev.add_argument(
        "--held-out-of",
        metavar="RUN",
        help="with --images: score only the people that RUN (trained or fine-tuned on FOLDER with "
        "train --images) held out for validation: the figure that says how it does on new people "
        "of your own; give the same RUN to compare a model before and after fine-tuning",
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
    ve.add_argument("--calibration", metavar="NAME", help=CALIBRATION_HELP)
    ve.add_argument(
        "--runtime",
        choices=list(RUNTIMES),
        help=f"what embeds the faces (default {DEFAULT_RUNTIME}: onnxruntime where the model has an "
        "onnx export, else keras); onnxruntime and tflite run the model's export "
        "(facelib export --format onnx|tflite)",
    )
    ve.set_defaults(run=cmd_verify)

    em = verbs.add_parser("embed", help="embeddings of the face in each picture, to a .npy file")
    em.add_argument("files", nargs="+")
    em.add_argument("--out", required=True, help="output .npy file")
    em.add_argument("--model", help=MODEL_HELP)
    em.set_defaults(run=cmd_embed)

    gallery_help = "gallery folder (default: $FACELIB_HOME/gallery)"
    en = verbs.add_parser("enroll", help="add a person to the gallery: each photo becomes one template")
    en.add_argument(
        "name", help='the person\'s name, as identify will say it (quote it if it has spaces: "Ada Lovelace")'
    )
    en.add_argument("photos", nargs="+", metavar="photo", help="a picture, or a folder of them")
    en.add_argument("--gallery", metavar="DIR", help=gallery_help)
    en.add_argument("--model", help=MODEL_HELP)
    en.add_argument(
        "--replace", action="store_true", help="replace the person's templates (of this model) by these"
    )
    en.add_argument(
        "--force",
        action="store_true",
        help="enroll faces that fail the quality check (too small, blurred, dark, tilted or turned) too",
    )
    en.set_defaults(run=cmd_enroll)

    idf = verbs.add_parser("identify", help="who is in each photo: an enrolled person, or unknown")
    idf.add_argument("photos", nargs="+", metavar="photo", help="a picture, or a folder of them")
    known = idf.add_mutually_exclusive_group()
    known.add_argument("--gallery", metavar="DIR", help=gallery_help)
    known.add_argument(
        "--known",
        metavar="FOLDER",
        help="identify against a folder of person/*.jpg (embedded now, nothing saved) instead of the gallery",
    )
    idf.add_argument("--model", help=MODEL_HELP)
    idf.add_argument("--json", action="store_true", help="print a JSON list, one object per photo")
    idf.add_argument(
        "--fpir",
        type=float,
        default=DEFAULT_FPIR,
        help="share of strangers that may be given a name (default: %(default)s)",
    )
    idf.add_argument(
        "--margin",
        type=float,
        default=0.0,
        help="the nearest person must be this much nearer than the runner-up (default: %(default)s)",
    )
    idf.add_argument(
        "--mode",
        choices=list(TEMPLATE_MODES),
        default="min",
        help="compare with each template and keep the nearest (min), or with their mean (mean)",
    )
    idf.add_argument("--calibration", metavar="NAME", help=CALIBRATION_HELP)
    idf.set_defaults(run=cmd_identify)

    cal = verbs.add_parser(
        "calibrate", help="thresholds for your own kind of pictures, from a folder of person/*.jpg"
    )
    cal.add_argument(
        "--images",
        metavar="FOLDER",
        required=True,
        help=f"person/*.jpg: at least {CALIBRATION_PEOPLE} people with {CALIBRATION_PICTURES} pictures or more",
    )
    cal.add_argument("--name", help="the calibration's name (default: the folder's name)")
    cal.add_argument("--model", help=MODEL_HELP)
    cal.set_defaults(run=cmd_calibrate)

    ex = verbs.add_parser(
        "export", help="write a model as SavedModel, TFLite or ONNX (float32, or int8), with its card"
    )
    ex.add_argument("model", metavar="RUN", help="model folder, or run name under models/")
    ex.add_argument("--format", required=True, choices=list(FORMATS))
    ex.add_argument(
        "--int8",
        action="store_true",
        help="post-training int8 quantisation (tflite, onnx), calibrated on training-side crops",
    )
    ex.add_argument("--out", metavar="DIR", help="default: <model folder>/export/<format>[-int8]")
    ex.set_defaults(run=cmd_export)

    doc = verbs.add_parser(
        "doctor", help="this machine, the math facelib picks for it, and what each preset would train"
    )
    doc.add_argument("--preset", choices=list(config.PRESETS), action="append", help="default: all")
    doc.add_argument("--no-timing", dest="timing", action="store_false", help="skip the timed train steps")
    doc.set_defaults(run=cmd_doctor)
    return parser


def interrupted_message(args: argparse.Namespace) -> str:
    """What Ctrl-C leaves, and how to go on, for the command that was stopped."""
    if args.verb == "train":
        # A plain `facelib train` refuses a folder holding an interrupted run: --resume.
        return "interrupted; run it again with --resume to continue from the last finished epoch"
    if args.verb in ("preprocess", "fetch"):
        return "interrupted; run the same command again to continue"
    return "interrupted"


def hint(exc: FacelibError) -> str:
    """What to do next, in the command line's terms, for errors that carry the facts as
    fields; the library's own message stays free of flags (notebooks see it too)."""
    if isinstance(exc, RunFolderError):
        return (
            "pass --resume to continue it, or choose another --name"
            if exc.resumable
            else "choose another --name"
        )
    if isinstance(exc, reports.EmptyGalleryError):
        return (
            "enroll people with `facelib enroll NAME photo…`, or give a folder of person/*.jpg with --known"
        )
    if isinstance(exc, reports.ForeignGalleryError):
        return (
            f"enroll them again with `facelib enroll NAME photo… --model {exc.model}`, or identify with "
            f"--model {exc.makers[0]}"
        )
    if isinstance(exc, reports.PoorQualityError):
        return "take another picture, or give --force to enroll it anyway"
    if isinstance(exc, reports.NoOpenSetCalibrationError):
        return (
            "calibrate on your own pictures instead: `facelib calibrate --images FOLDER --name NAME`, "
            "then `--calibration NAME`"
        )
    return ""


# The kind of work each verb that loads TensorFlow does, for its oneDNN choice
# (facelib.core.machine): a picture or two at a time, many at once, or training.
ROLES = {
    "train": "train",
    "doctor": "train",
    "evaluate": "evaluate",
    "calibrate": "evaluate",
    "embed": "evaluate",
    "verify": "verify",
    "enroll": "verify",
    "identify": "verify",
    "export": "evaluate",
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verb in ROLES:
        machine.configure_math(ROLES[args.verb])  # before TensorFlow loads: it reads the setting once
        if getattr(args, "timing", True):  # `doctor --no-timing` loads none
            machine.import_tensorflow_quietly()
    try:
        args.run(args)
    except FacelibError as exc:
        advice = hint(exc)
        print(f"error: {exc}{f'; {advice}' if advice else ''}", file=sys.stderr)
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
