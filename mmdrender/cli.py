"""The ``mmdrender`` command line."""

from __future__ import annotations

import json
import sys

import click

from mmdrender.errors import MMDRenderError
from mmdrender.loader import load_model
from mmdrender.model import Model, MorphPanel
from mmdrender.samples_cli import samples_command

NECK_BONE, HEAD_BONE = "首", "頭"


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
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    summary = model_summary(model)
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False, indent=2))
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
    click.echo("\n".join(lines))


main.add_command(samples_command)
