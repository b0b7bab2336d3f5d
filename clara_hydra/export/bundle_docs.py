"""The fixed files of an exported bundle: ``LICENSE``, ``docs/README.md`` and ``configs/logging.conf``."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from clara_hydra.export.select import SelectedTrial

# MONAI's model zoo default (configs/logging.conf, which `monai.bundle run` reads next to the config): INFO and up
# to the console. Only stdlib logging classes and sys.stdout: MONAI 1.6 refuses anything else in this file.
LOGGING_CONF = """[loggers]
keys=root

[handlers]
keys=consoleHandler

[formatters]
keys=fullFormatter

[logger_root]
level=INFO
handlers=consoleHandler

[handler_consoleHandler]
class=StreamHandler
level=INFO
formatter=fullFormatter
args=(sys.stdout,)

[formatter_fullFormatter]
format=%(asctime)s - %(name)s - %(levelname)s - %(message)s
"""


def license_text(trial: SelectedTrial) -> str:
    """A LICENSE: the configs under Apache-2.0 (as MONAI's bundles), the weights also under the data's terms."""
    year = datetime.date.today().year
    return (
        f"Copyright {year} the author of the clara-hydra sweep '{trial.study_name}'.\n\n"
        "The configuration files of this bundle (configs/) are licensed under the Apache License, Version 2.0\n"
        '(the "License"); you may not use them except in compliance with the License. You may obtain a copy of\n'
        "the License at http://www.apache.org/licenses/LICENSE-2.0\n\n"
        "Unless required by applicable law or agreed to in writing, software distributed under the License is\n"
        'distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or\n'
        "implied. See the License for the specific language governing permissions and limitations under the\n"
        "License.\n\n"
        "The model weights (models/) were trained on the data named in configs/metadata.json (data_source);\n"
        "their use is subject to that data's terms as well. Replace this file with your own terms before you\n"
        "share the bundle.\n"
    )


def readme(
    trial: SelectedTrial,
    checkpoint: Path,
    variables: list[str],
    notes: list[str],
    data: dict[str, str] | None = None,
    files: list[str] | None = None,
    datalist: dict[str, Any] | None = None,
) -> str:
    """``docs/README.md``: where the bundle came from and the commands that use it.

    Args:
        trial: the exported trial.
        checkpoint: the checkpoint the weights came from.
        variables: the trial's variables (top-level ids of the configs).
        notes: things the user should know.
        data: the ids that name the trial's data, with their values (``{"DATA_ROOT": "/data/spleen"}``).
        files: the files of the bundle (which configs there are).
        datalist: the ids that name inference.json's images, with their exported values.
    """
    overrides = " ".join(trial.overrides) or "(none)"
    value = f"{trial.value:.6g}" if trial.value is not None else "n/a"
    shown = ", ".join(f"`{v}`" for v in variables[:12]) + (" ..." if len(variables) > 12 else "")
    data = data or {}
    plain = [k for k, v in data.items() if "{" not in v]
    built = [k for k in data if k not in plain]
    example = plain[0] if plain else "DATA_ROOT"
    follows = f" `{built[0]}` is built on another id (`{data[built[0]]}`) and follows it." if built else ""
    data_lines = [f"- `{k}`: `{v}`" for k, v in data.items()]
    files = files or []
    has_infer = "configs/inference.json" in files
    run_config = "configs/inference.json" if has_infer else "configs/evaluate.json"
    net_config = run_config if run_config in files else "configs/train.json"
    infer_lines = (
        [
            "# label maps of new images, no label needed (see 'New images')",
            "python -m monai.bundle run --config_file configs/inference.json \\",
            "    --datalist_file /data/new/datalist.json --datalist_key test --dataset_dir /data/new",
            "# as exported, inference.json reads the trial's validation images (not their labels)",
            "python -m monai.bundle run --config_file configs/inference.json",
        ]
        if has_infer
        else []
    )
    evaluate_lines = (
        [
            "# the trial's validation: its metrics (the key metric is the trial's value) and its label maps",
            "python -m monai.bundle run --config_file configs/evaluate.json",
        ]
        if "configs/evaluate.json" in files
        else []
    )
    shown_list = ", ".join(f"`{k}`: `{v}`" for k, v in (datalist or {}).items())
    new_images = (
        [
            "## New images",
            "",
            "`inference.json` needs no label and computes no metric. It reads the images from a MONAI datalist "
            "JSON (`monai.data.load_decathlon_datalist`, no `$` expression): `datalist_file` names the file, "
            "`datalist_key` the list in it, `dataset_dir` the folder its relative paths start from. The Medical "
            "Segmentation Decathlon's own form works as it is, plain paths under `test`:",
            "",
            "```json",
            '{"test": ["imagesTs/case_001.nii.gz", "imagesTs/case_002.nii.gz"]}',
            "```",
            "",
            'Under any other key, give entries as `{"image": "imagesTs/case_001.nii.gz"}`; other fields of an '
            "entry (a `label`) are not read. The pre-transforms are the validation's, restricted to the image; "
            f"the exported defaults are the trial's validation list ({shown_list}).",
            "",
        ]
        if has_infer
        else []
    )
    lines = [
        f"# Trial {trial.number} of the clara-hydra sweep '{trial.study_name}'",
        "",
        f"Exported by `clara-hydra export` from the job folder `{trial.job_dir}` ({trial.state}, best validation "
        f"key metric {value}). Weights: `{checkpoint.name}` of that folder, saved here as `models/model.pt` "
        "(a plain `state_dict`).",
        "",
        f"Command-line overrides of the trial: `{overrides}`",
        "",
        "## Use",
        "",
        "The bundle runs wherever it is copied. As in MONAI's model zoo, `bundle_root` is `.` (the folder the "
        "command starts in) and every file of the bundle is named from it; run the commands in the bundle's "
        "folder, or add `--bundle_root /path/to/this/bundle` to run them from anywhere else. MONAI reads "
        "`metadata.json` and `logging.conf` (console logging, the model zoo's default) next to the config, so "
        "`--meta_file` and `--logging_file` may be left out.",
        "",
        "```bash",
        "cd /path/to/this/bundle",
        *infer_lines,
        *evaluate_lines,
        "# from any other folder",
        f"python -m monai.bundle run --config_file /path/to/this/bundle/{run_config} \\",
        "    --bundle_root /path/to/this/bundle",
        "# train again (writes checkpoints into models/, next to model.pt)",
        "python -m monai.bundle run --config_file configs/train.json",
        "# check the network against the metadata's input and output",
        "python -m monai.bundle verify_net_in_out network_def --meta_file configs/metadata.json \\",
        f"    --config_file {net_config}",
        "# TorchScript",
        "python -m monai.bundle ckpt_export network_def --filepath models/model.ts --ckpt_file models/model.pt \\",
        f"    --meta_file configs/metadata.json --config_file {net_config}",
        "# check the metadata (the schema ships with clara-hydra: clara_hydra/export/schema/)",
        "python -m monai.bundle verify_metadata --meta_file configs/metadata.json --filepath <that schema file>",
        "```",
        "",
        "Label maps (`eval/<image>_seg.nii.gz`): the argmax over the network's channels (class indices, one "
        "channel, `uint8`), in the source image's grid (shape, spacing, orientation and affine restored by "
        "inverting the pre-transforms), as NIfTI that viewers and MONAI Label open. `inference.json` and "
        "`evaluate.json` write the same label map for the same image.",
        "",
        *new_images,
        "## Data",
        "",
        "The data stay where the trial read them; these ids name them:",
        "",
        *(data_lines or ["- (none found: see the dataset ids among the variables below)"]),
        "",
        f"Other data: override them, e.g. `--{example} /data/other`.{follows}",
        "",
        "The trial's Clara variables are top-level ids, so any of them can be overridden on the command line, "
        f"e.g. `--epochs 10`: {shown}.",
        "",
        "The configs contain no `$` expression: every object is a `_target_` item, links are `@` references. "
        "A path inside the bundle is `string.Formatter.vformat` of `{bundle_root}/models/model.pt`, the "
        "`$`-free form of the model zoo's `$@bundle_root + '/models/model.pt'`. "
        "`device` is `ignite.distributed.device()`: CUDA when there is one, else the CPU.",
    ]
    if notes:
        lines += ["", "## Notes", "", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"
