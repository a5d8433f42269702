"""A model card as Markdown in the Hugging Face layout: a YAML header, then what a user needs to know.

:func:`card_markdown` turns a card record (:mod:`petlib.training.card`) into the text of
``<name>_card.md`` beside a checkpoint and of ``README.md`` in a model folder
(:mod:`petlib.training.pretrained`). The header carries what the Hub and other tools read
(``license``, ``library_name: petlib``, ``tags``, ``datasets``, ``metrics`` and a ``model-index``
with the recorded test Dice and IoU); the sections are: model, intended use, training data,
training procedure, evaluation, limitations, how to load it, licence. Nothing in it depends on
the machine that wrote it.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["card_markdown", "yaml_header"]

#: What each network is, for the card's first section.
ARCHITECTURES = {
    "unet": "the original U-Net (Ronneberger et al., 2015): five double 3x3 convolutions down, transposed "
            "convolutions and skips up, one logit per pixel",
    "resnet34_unet": "a U-Net with a ResNet34 encoder (torchvision's layer names) and five decoder blocks: the "
                     "layout of `segmentation_models_pytorch.Unet(\"resnet34\")`, whose weights convert both ways "
                     "(`petlib.models.from_smp` / `to_smp`)",
}
SHORT_NAMES = {"unet": "a U-Net", "resnet34_unet": "a ResNet34-UNet"}
#: The licence of the weights: that of the data they were trained on (share-alike).
WEIGHTS_LICENCE = "cc-by-sa-4.0"
CITATION = ('O. M. Parkhi, A. Vedaldi, A. Zisserman, C. V. Jawahar, "Cats and Dogs", IEEE Conference on Computer '
            'Vision and Pattern Recognition (CVPR), 2012. <https://www.robots.ox.ac.uk/~vgg/data/pets/>')


def _q(value: Any) -> str:
    # JSON strings and numbers are valid YAML scalars: quoting through json.dumps keeps the header parseable.
    return json.dumps(value)


def _number(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def yaml_header(card: Mapping[str, Any]) -> str:
    """The card's YAML front matter (between ``---`` lines), in the Hugging Face model card layout."""
    name = card["model"]["name"]
    tags = ["image-segmentation", "binary-segmentation", "pets", "oxford-iiit-pet", "pytorch", "petlib",
            *(["unet"] if name == "unet" else ["unet", "resnet34"])]
    lines = ["---", f"license: {WEIGHTS_LICENCE}", "library_name: petlib", "pipeline_tag: image-segmentation",
             "tags:", *[f"- {tag}" for tag in tags], "datasets:", "- oxford-iiit-pet", "metrics:", "- dice", "- iou"]
    results = []
    for row in card.get("test") or []:
        setting = f"{row['image_size']} px, {'flip TTA' if row['tta'] else 'no TTA'}, {row['images']} images"
        results += [
            "  - task: {type: image-segmentation, name: Binary pet segmentation}",
            f"    dataset: {{type: oxford-iiit-pet, name: {_q(row['dataset'])}, split: {_q(row['split'])}}}",
            "    metrics:",
            f"    - {{type: dice, value: {round(row['dice'], 4)}, name: {_q('Dice per image (' + setting + ')')}}}",
            f"    - {{type: iou, value: {round(row['iou'], 4)}, name: {_q('IoU per image (' + setting + ')')}}}",
        ]
    if results:
        lines += ["model-index:", f"- name: {_q(card['run_name'])}", "  results:", *results]
    return "\n".join(lines + ["---"])


def _model_section(card: Mapping[str, Any]) -> list[str]:
    model = card["model"]
    training = card.get("training") or {}
    kwargs = f" with `{json.dumps(model['kwargs'])}`" if model.get("kwargs") else ""
    kept = training.get("kept_epoch")
    epoch = ""
    if kept:
        epoch = (f", the weights of epoch {kept} (the best validation Dice)" if training.get("best_epoch")
                 else f", the weights of the last epoch, {kept}; no validation split")
    size = training.get("image_size") or model.get("image_size")
    return [
        "## Model", "",
        f"`{model['name']}`{kwargs}: {ARCHITECTURES.get(model['name'], model['name'])}. "
        f"{model['parameters']:,} parameters{epoch}. File: `{card['checkpoint']}`.", "",
        "Input: images `(N, 3, H, W)`, float RGB in [0, 1], any H and W (the model normalises with ImageNet's "
        "mean and std itself, and pads to its stride). Output: logits `(N, 1, H, W)`; `sigmoid(logits) > 0.5` is pet."
        + (f" It saw photos resized to {size}x{size} px: resize to that, predict, and resize the logits back "
           "(`petlib-predict` does)." if size else ""),
    ]


def _intended_use() -> list[str]:
    return [
        "## Intended use", "",
        "Separating the pet from the background in photos like those of Oxford-IIIT Pet: one cat or dog, "
        "mostly in view, in an everyday photo. For learning and teaching segmentation, comparing training "
        "recipes, and as a starting point for fine-tuning. The output is a per-pixel pet probability.", "",
        "Out of scope: other animals or objects, several pets in one photo (they come out as one region), "
        "medical, safety or identification decisions, and any use where a wrong mask harms someone.",
    ]


def _data_section(card: Mapping[str, Any]) -> list[str]:
    data = card.get("data")
    if not data:
        return ["## Training data", "", "Not recorded: these weights were saved from a model object, not from a "
                "petlib training run."]
    images = data.get("images") or {}
    sizes = ", ".join(f"{count} {split}" for split, count in images.items())
    what = f"{data['dataset']} (folder `{data['folder']}`)"
    lines = ["## Training data", "", f"{what}" + (f": {sizes} images" if sizes else "") + "."]
    if data.get("subset"):
        lines[-1] += f" Only the first {data['subset']} images of each split were used (`subset`)."
    lines += ["", f"Split: {data['split']}. Labels: the trimaps, the border band counted as pet. Licence of the data: "
              f"{data['licence']}."]
    return lines


def _procedure_section(card: Mapping[str, Any]) -> list[str]:
    training, recipe = card.get("training"), card.get("recipe")
    if not training or not recipe:
        return ["## Training procedure", "", "Not recorded."]
    recipe_line = f"petlib's `{recipe['closest']}` recipe"
    if recipe["changed"]:
        recipe_line += " with " + ", ".join(f"`{k}={v}`" for k, v in recipe["changed"].items())
    settings = ", ".join(f"{k} {v}" for k, v in recipe["settings"].items())
    status = "finished" if training["finished"] else "stopped early"
    if card.get("source") == "checkpoint":
        status = "counted up to the kept epoch: this card was made from the checkpoint"
    processes = f" x {training['processes']} processes" if training.get("processes", 1) > 1 else ""
    versions = card["versions"]
    return [
        "## Training procedure", "",
        f"{recipe_line} ({settings}).", "",
        f"{training['epochs_trained']} of {training['epochs_planned']} epochs ({status}) at {training['image_size']} px, "
        f"{training['wall_time_seconds'] / 60:.1f} min on {training.get('device') or 'a device not recorded'}{processes}, mixed precision "
        f"`{training.get('amp')}`. petlib {versions.get('trained_with_petlib') or versions['petlib']}, "
        f"torch {versions.get('trained_with_torch') or versions['torch']}.",
    ]


def _interval(row: Mapping[str, Any]) -> str:
    per_image = row.get("dice_per_image")
    if not per_image:
        return "-"
    return f"{per_image['mean']:.4f} [{per_image['low']:.4f}, {per_image['high']:.4f}]"


def _evaluation_section(card: Mapping[str, Any]) -> list[str]:
    lines = ["## Evaluation", ""]
    validation = card.get("validation")
    if validation:
        lines += [f"Validation Dice **{_number(validation['dice'])}** (IoU {_number(validation['iou'])}) at epoch "
                  f"{validation['epoch']}: {validation['policy']}.", ""]
    tests = card.get("test") or []
    if not tests:
        name = card["checkpoint"]
        return lines + [f"Test split: not scored yet (`petlib-eval --model_path {name} --data_path DATASET`)."]
    lines += ["| split | data | images | size | TTA | Dice | IoU | per-image Dice, 95% interval | as validated |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in tests:
        lines.append(f"| {row['split']} | {row['dataset']} | {row['images']} | {row['image_size']} px | "
                     f"{'flip' if row['tta'] else 'none'} | **{_number(row['dice'])}** | {_number(row['iou'])} | "
                     f"{_interval(row)} | {'yes' if row.get('as_validated') else 'no'} |")
    lines += ["", f"Protocol: {tests[-1]['policy']}. The interval is a bootstrap over the test images: how far the "
              "mean could move on another draw of images like these."]
    if any(row.get("kind") == "sample" for row in tests):
        lines += ["", "The sample's test split is 60 trainval images of its 3 breeds, not the official test split: "
                  "its scores are not comparable with published Oxford-IIIT Pet results."]
    return lines


def _limitations_section(card: Mapping[str, Any]) -> list[str]:
    data, training = card.get("data") or {}, card.get("training") or {}
    lines = ["## Limitations", ""]
    if data.get("kind") == "sample":
        lines.append("- Trained on the 300-image sample: **3 breeds** (Abyssinian, American bulldog, Bengal), "
                     "**300 images** in all, downsized to at most 256 px. Expect worse masks on other breeds, "
                     "colours and poses; this is a demonstration model, not a general pet segmenter.")
    if data.get("subset"):
        lines.append(f"- Only {data['subset']} images per split were used for training and validation.")
    if training.get("image_size"):
        lines.append(f"- Trained at **{training['image_size']} px**: detail finer than that (fur edges, whiskers, "
                     "thin legs and tails) is lost when a photo is shrunk to it.")
    if training and not training.get("finished"):
        lines.append(f"- The run stopped after {training['epochs_trained']} of {training['epochs_planned']} epochs.")
    if not training:
        lines.append("- Nothing is recorded of how these weights were trained or scored.")
    lines += [
        "- The labels count the trimap's border band as pet, so edges are approximate by a few pixels.",
        "- Dice is averaged per image: a few failures (a pet barely in view, two pets) can hide in a good mean.",
        "- Oxford-IIIT Pet photos come from the web and are mostly well lit and centred; other photos may fare worse.",
    ]
    return lines


def _load_section(card: Mapping[str, Any]) -> list[str]:
    name, model = card["checkpoint"], card["model"]["name"]
    folder = card.get("layout") == "folder"
    state = (f'state_dict = load_file("{name}/model.safetensors")  # memory-mapped; loading runs no code\n'
             f'config = json.load(open("{name}/config.json"))  # model_name, model_kwargs, image_size, tta'
             if folder else
             f'checkpoint = torch.load("{name}", weights_only=True)  # a dict of tensors and plain data\n'
             'state_dict, config = checkpoint["model_state"], checkpoint  # model_name, model_kwargs, config')
    imports = "import json\nfrom safetensors.torch import load_file" if folder else "import torch"
    lines = [
        "## How to load it", "", "With petlib (`pip install petlib`):", "", "```python", "import petlib", "",
        f'model, info = petlib.load_model("{name}")  # in eval mode',
        "logits = model(images)  # images: float (N, 3, H, W) in [0, 1] -> logits (N, 1, H, W)",
        "masks = logits.sigmoid() > 0.5", "```", "",
        f"Or from the command line: `petlib-predict photo.jpg --model_path {name} --out_dir masks/`; through "
        f'torch.hub: `torch.hub.load("petlib/petlib", "{model}", weights="{name}")`.', "",
        "With plain PyTorch: the weights are a `state_dict` for the network in `petlib/models/` (torch-only code "
        "that can be copied into any project):", "", "```python", imports, "from petlib.models import build_model",
        "", state, 'model = build_model(config["model_name"], **config["model_kwargs"]).eval()',
        "model.load_state_dict(state_dict)", "```",
    ]
    if model == "resnet34_unet":
        lines += ["", "In segmentation_models_pytorch: `smp_model = petlib.models.to_smp(model)` gives an "
                  '`smp.Unet("resnet34")` with these weights (it takes ImageNet-normalised images).']
    lines += ["", "Without PyTorch: `petlib-export --format onnx` writes an ONNX file for onnxruntime."]
    return lines


def _licence_section() -> list[str]:
    return [
        "## Licence", "",
        "The weights are trained on Oxford-IIIT Pet, licensed CC BY-SA 4.0 "
        "(<https://creativecommons.org/licenses/by-sa/4.0/>), and are shared under the same licence; "
        "petlib's code is MIT. Cite the dataset as:", "", f"> {CITATION}",
    ]


def card_markdown(card: Mapping[str, Any]) -> str:
    """The card as Markdown: a YAML header and the sections a reader needs (see the module docstring)."""
    model = card["model"]["name"]
    title = f"# {card['run_name']}: {SHORT_NAMES.get(model, model)} for pet segmentation (petlib)"
    sections = [
        [yaml_header(card), "", title, "",
         f"Card written {card['written']} by petlib {card['versions']['petlib']}."],
        _model_section(card), _intended_use(), _data_section(card), _procedure_section(card),
        _evaluation_section(card), _limitations_section(card), _load_section(card), _licence_section(),
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"
