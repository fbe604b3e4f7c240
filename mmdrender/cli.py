"""The ``mmdrender`` command line."""

from __future__ import annotations

import functools
import json
import sys
import warnings
from collections.abc import Sequence

import click

from mmdrender.errors import MMDRenderError
from mmdrender.gl.renderer import DEFAULT_SAMPLES, DEFAULT_SUPERSAMPLE
from mmdrender.loader import load_model
from mmdrender.model import Model, MorphPanel
from mmdrender.pose import HEAD_BONE, NECK_BONE
from mmdrender.samples_cli import samples_command
from mmdrender.schemas import SCHEMAS


@click.group()
@click.version_option(package_name="tha-data-engine")
def main():
    """Load, inspect and render MikuMikuDance models (PMD/PMX)."""


def model_summary(model: Model) -> dict:
    """The ``info --json`` object; other tools script against these keys."""
    panels = {panel.name.lower(): [] for panel in MorphPanel if panel != MorphPanel.SYSTEM}
    for morph in model.morphs:
        panel = morph.panel if morph.panel != MorphPanel.SYSTEM else MorphPanel.OTHER
        panels[panel.name.lower()].append(morph.name)
    return {
        "path": str(model.path),
        "format": model.format,
        "name": model.name,
        "english_name": model.english_name,
        "vertices": len(model.vertices),
        "faces": len(model.faces),
        "materials": len(model.materials),
        "bones": len(model.bones),
        "morphs": len(model.morphs),
        "has_neck_bone": model.bone_index(NECK_BONE) is not None,
        "has_head_bone": model.bone_index(HEAD_BONE) is not None,
        "morphs_by_panel": panels,
        "morph_kinds": sorted({morph.kind.name.lower() for morph in model.morphs}),
        "textures": [
            {"reference": ref.reference, "path": str(ref.path) if ref.path else None,
             "shared_toon": ref.shared_toon}
            for ref in model.textures if ref.found
        ],
        "missing_textures": [
            {"reference": ref.reference, "problem": ref.problem}
            for ref in model.missing_textures
        ],
        "warnings": list(model.warnings),
    }


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--root", type=click.Path(file_okay=False),
              help="Models root that texture paths may not leave (default: the model's folder).")
def info(model_path, as_json, root):
    """Print what a model contains and what is wrong with it."""
    try:
        model = load_model(model_path, root=root)
    except MMDRenderError as error:
        click.echo(printable(f"error: {error}"), err=True)
        sys.exit(1)
    summary = model_summary(model)
    if as_json:
        click.echo(printable(json.dumps(summary, ensure_ascii=False, indent=2)))
        return
    yes_no = {True: "yes", False: "MISSING"}
    lines = [
        f"{summary['path']}",
        f"  format      {summary['format']}   name: {model.name or '-'}"
        + (f" / {model.english_name}" if model.english_name else ""),
        f"  counts      {summary['vertices']} vertices, {summary['faces']} triangles, "
        f"{summary['materials']} materials, {summary['bones']} bones, {summary['morphs']} morphs",
        f"  neck bone   {yes_no[summary['has_neck_bone']]} ({NECK_BONE})    "
        f"head bone {yes_no[summary['has_head_bone']]} ({HEAD_BONE})",
        f"  morph kinds {', '.join(summary['morph_kinds']) or '-'}",
    ]
    for panel, names in summary["morphs_by_panel"].items():
        if names:
            lines.append(f"  {panel:<11} {', '.join(names)}")
    lines.append(f"  textures    {len(summary['textures'])} found, "
                 f"{len(summary['missing_textures'])} missing")
    for texture in summary["textures"]:
        where = texture["path"] or f"generated shared toon {texture['shared_toon']}"
        lines.append(f"    {texture['reference']} -> {where}")
    for texture in summary["missing_textures"]:
        lines.append(f"    MISSING {texture['reference']}: {texture['problem']}")
    for warning in summary["warnings"]:
        lines.append(f"  warning     {warning}")
    click.echo(printable("\n".join(lines)))


def printable(text: str) -> str:
    """``text`` with lone surrogates written as ``\\udcXX`` escapes, so it is valid UTF-8.

    File names that are not UTF-8 (Shift-JIS bytes left raw by zip tools) reach
    Python as lone surrogates. Inside JSON the escape is a JSON escape, so
    ``json.loads`` gives back the exact path and the file can still be opened.
    """
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


main.add_command(samples_command)


# --- render -------------------------------------------------------------------

# The --sheet grid: one row per pose parameter group, cells override --pose.
SHEET_ROWS: tuple[tuple[str, tuple[tuple[str, dict[str, float]], ...]], ...] = (
    ("head_x (+ = tilt up)",
     (("head_x=-1", {"head_x": -1.0}), ("rest", {}), ("head_x=+1", {"head_x": 1.0}))),
    ("head_y (+ = turn to image right)",
     (("head_y=-1", {"head_y": -1.0}), ("rest", {}), ("head_y=+1", {"head_y": 1.0}))),
    ("neck_z (+ = head top to image left)",
     (("neck_z=-1", {"neck_z": -1.0}), ("rest", {}), ("neck_z=+1", {"neck_z": 1.0}))),
    ("eyes / mouth",
     (("eye_left=1", {"eye_left": 1.0}), ("eye_right=1", {"eye_right": 1.0}),
      ("mouth=1", {"mouth": 1.0}))),
)
MAP_FIELDS = ("wink_left", "wink_right", "mouth_open")


class CliError(Exception):
    """Bad command-line input found after click parsed it: one ``error:`` line, exit 1."""


def parse_pairs(text: str, what: str) -> dict[str, str]:
    """``a=1,b=2`` -> {"a": "1", "b": "2"}; a name may not repeat."""
    pairs: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, equals, value = item.partition("=")
        name = name.strip()
        if not equals or not name:
            raise CliError(f"bad {what} {item!r}: expected NAME=VALUE, e.g. {_EXAMPLES[what]}")
        if name in pairs:
            raise CliError(f"{what} {name!r} is given twice")
        pairs[name] = value.strip()
    return pairs


_EXAMPLES = {"--pose": "--pose eye_left=1,head_y=-0.5", "--morph": "--morph あ=1",
             "--map": "--map wink_left=ウィンク右,mouth_open=あ"}


def parse_number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise CliError(f"{what} must be a number, got {text!r}") from None


def parse_pose(text: str | None) -> dict[str, float]:
    """``--pose`` -> {parameter: value}; names and ranges are checked by the Poser."""
    if not text:
        return {}
    return {name: parse_number(value, f"pose parameter {name!r}")
            for name, value in parse_pairs(text, "--pose").items()}


def parse_morphs(items: Sequence[str]) -> dict[str, float]:
    """Repeated ``--morph NAME=W`` (the last ``=`` splits, so a name may hold one)."""
    morphs: dict[str, float] = {}
    for item in items:
        name, equals, value = item.rpartition("=")
        name = name.strip()
        if not equals or not name:
            raise CliError(f"bad --morph {item!r}: expected NAME=WEIGHT, e.g. --morph あ=1")
        morphs[name] = morphs.get(name, 0.0) + parse_number(value.strip(), f"morph {name!r}")
    return morphs


def parse_mapping(text: str | None):
    """``--map wink_left=NAME,...`` over the MorphMapping defaults; an empty NAME is None."""
    from mmdrender.pose import MorphMapping

    if not text:
        return MorphMapping()
    fields = {}
    for name, value in parse_pairs(text, "--map").items():
        if name not in MAP_FIELDS:
            raise CliError(f"unknown --map field {name!r}; the fields are {', '.join(MAP_FIELDS)}")
        fields[name] = value or None
    return MorphMapping(**fields)


@main.command("render")
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="PNG to write (RGBA, transparent background; RGB for --sheet).")
@click.option("--pose", "pose_text", metavar="P=V,...",
              help="Pose parameters, e.g. eye_left=1,head_y=-0.5 (missing ones are 0).")
@click.option("--morph", "morph_items", metavar="NAME=W", multiple=True,
              help="A raw morph weight, added to the pose's; repeatable.")
@click.option("--map", "map_text", metavar="FIELD=NAME,...",
              help="Morphs for eye_left/eye_right/mouth: wink_left=, wink_right=, mouth_open= "
                   "(default ウィンク右, ウィンク, あ; an empty NAME means the model has none).")
@click.option("--head-top", type=float, help="Head top y (model units); with --head-bottom.")
@click.option("--head-bottom", type=float, help="Head bottom (chin) y; with --head-top.")
@click.option("--centre-x", type=float,
              help="Head centre x (default: the 頭 bone's x, else 0).")
@click.option("--shading", type=click.Choice(["phong", "toon"]), default="phong",
              show_default=True)
@click.option("--size", type=click.IntRange(16, 4096),
              help="Image side in pixels (each cell's side with --sheet) [default: 256; 512 "
                   "with --schema tha3].")
@click.option("--supersample", type=click.IntRange(1, 4), default=DEFAULT_SUPERSAMPLE,
              show_default=True,
              help="Anti-aliasing: draw at N times the size per side, box-filter down (1: off).")
@click.option("--msaa", type=click.IntRange(0, 16), default=DEFAULT_SAMPLES, show_default=True,
              help="Multisample anti-aliasing samples on top (0: off; slow on llvmpipe).")
@click.option("--sheet", is_flag=True,
              help="Write a labelled contact sheet of a pose grid instead of one image "
                   "(THA1's parameters).")
@click.option("--schema", type=click.Choice(list(SCHEMAS)), default="tha1", show_default=True,
              help="The pose's parameters: tha1's six, tha2's 42 or tha3's 45, framed as "
                   "that schema's dataset frames them (tha3: the upper body, arms lowered).")
@click.option("--rig", "rig_path", type=click.Path(dir_okay=False),
              help="With --schema tha2/tha3: the model's roles as JSON (`annotate suggest "
                   "MODEL --schema tha3 --rig FILE` writes them). Without one only the head "
                   "rotations act.")
def render_command(model_path, output, pose_text, morph_items, map_text, head_top, head_bottom,
                   centre_x, shading, size, supersample, msaa, sheet, schema, rig_path):
    """Render MODEL posed, framed on its head, to a PNG.

    Without --head-top/--head-bottom the head is framed from estimated bounds
    (printed to stderr). Pose parameters follow the dataset spec: eye_left,
    eye_right, mouth in [0, 1]; head_x, head_y, neck_z in [-1, 1] (±15°). With
    --schema tha2 or tha3, the schema's parameters (eyebrow_angry_left=1,
    iris_rotation_y=-1, body_y=0.5, ...) act through the roles in --rig; a
    parameter the model has no role for is held at 0, with a warning.
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                antialias = {"supersample": supersample, "samples": msaa}
                if schema != "tha1":
                    given = [option for option, value in (("--morph", morph_items),
                             ("--map", map_text), ("--sheet", sheet)) if value]
                    if given:
                        raise CliError(f"{', '.join(given)}: for --schema tha1 only")
                elif rig_path:
                    raise CliError("--rig holds the roles of --schema tha2 or tha3")
                _render(model_path, output, pose_text, morph_items, map_text, head_top,
                        head_bottom, centre_x, shading, size, antialias, sheet,
                        schema, rig_path)
            finally:
                for warning in caught:
                    click.echo(f"warning: {warning.message}", err=True)
    except (CliError, MMDRenderError, ValueError, OSError) as error:
        message = " ".join(str(error).split()) or type(error).__name__
        click.echo(f"error: {message}", err=True)
        sys.exit(1)


def _render(model_path, output, pose_text, morph_items, map_text, head_top, head_bottom,
            centre_x, shading, size, antialias, sheet, schema="tha1", rig_path=None) -> None:
    from PIL import Image

    from mmdrender.camera import Camera, estimate_head_bounds, head_centre_x
    from mmdrender.pose import Poser
    from mmdrender.render import render

    params, morphs = parse_pose(pose_text), parse_morphs(morph_items)
    mapping = parse_mapping(map_text)
    if (head_top is None) != (head_bottom is None):
        raise CliError("give both --head-top and --head-bottom, or neither")
    model = load_model(model_path)
    if head_top is None:
        head_top, head_bottom, estimated_x = estimate_head_bounds(model)
        click.echo(f"no head bounds given; framing from estimated head bounds: top "
                   f"{head_top:.4g}, bottom {head_bottom:.4g}, centre x {estimated_x:.4g} "
                   "(pass --head-top/--head-bottom to override)", err=True)
    else:
        estimated_x = head_centre_x(model)
    camera = Camera.framing(SCHEMAS[schema].framing, head_top, head_bottom,
                            estimated_x if centre_x is None else centre_x,
                            size or SCHEMAS[schema].image_size)
    if schema == "tha1":
        poser = Poser(model, mapping)
        base = poser.pose(params, morphs)  # checks --pose and --morph before any cell
    else:
        base = _schema_pose(model, model_path, schema, rig_path, params)
    if not sheet:
        image = render(base, camera, shading=shading, **antialias)
        if not image[..., 3].any():
            click.echo("warning: the image is empty: the head bounds frame no part of the "
                       "model", err=True)
        picture = Image.fromarray(image, "RGBA")
    else:
        picture = _pose_sheet(model, poser, params, morphs, camera,
                              functools.partial(render, shading=shading, **antialias))
    try:
        picture.save(output, format="PNG")
    except OSError as error:
        raise CliError(f"cannot write {output}: {error.strerror or error}") from None
    click.echo(str(output))


def _schema_pose(model, model_path, schema_name, rig_path, params):
    """``model`` in a tha2/tha3 pose as the dataset poses it, roles from ``rig_path``."""
    from mmdrender.rig import Rig
    from mmdrender.schema_pose import SchemaPoser

    schema = SCHEMAS[schema_name]
    rig = Rig()
    if rig_path:
        try:
            with open(rig_path, encoding="utf-8") as f:
                rig = Rig.from_dict(json.load(f), source=str(rig_path))
        except (OSError, ValueError) as error:  # ValueError: bad JSON or UTF-8
            raise CliError(f"cannot read the rig {rig_path}: {error}") from None
    poser = SchemaPoser(model, schema, rig, lower_arms=schema.framing == "upper_body")
    posed = poser.pose(params)  # checks names and ranges first
    for name, value in params.items():
        if value and poser.realisations[name] == "absent":
            hint = "" if rig_path else (f" (no --rig given: `annotate suggest {model_path} "
                                        f"--schema {schema_name} --rig rig.json` writes one)")
            click.echo(f"warning: {name} is held at 0: the model has no role for it{hint}",
                       err=True)
    return posed


def _pose_sheet(model, poser, params, morphs, camera, render):
    from mmdrender.errors import PoseError
    from mmdrender.sheet import Cell, Panel, compose_sheet

    panels = []
    for title, cells in SHEET_ROWS:
        row = []
        for caption, cell_params in cells:
            try:
                posed = poser.pose({**params, **cell_params}, morphs)
            except PoseError as error:
                click.echo(f"warning: sheet cell {caption}: {error}", err=True)
                row.append(Cell(None, caption, "cannot pose: " + str(error)))
                continue
            row.append(Cell(render(posed, camera), caption))
        panels.append(Panel(title, row))
    extra = ", ".join(f"{k}={v:g}" for k, v in params.items())
    extra += "".join(f", morph {k}={v:g}" for k, v in morphs.items()) if morphs else ""
    title = model.path.name + (f"  (base pose: {extra.strip(', ')})" if extra else "")
    return compose_sheet(panels, columns=1, title=title)
