"""The human-readable files of an exported bundle: ``LICENSE`` and ``docs/README.md``."""

from __future__ import annotations

import datetime
from pathlib import Path

from clara_hydra.export.select import SelectedTrial


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
    trial: SelectedTrial, checkpoint: Path, variables: list[str], notes: list[str], data: dict[str, str] | None = None
) -> str:
    """``docs/README.md``: where the bundle came from and the commands that use it.

    Args:
        trial: the exported trial.
        checkpoint: the checkpoint the weights came from.
        variables: the trial's variables (top-level ids of the configs).
        notes: things the user should know.
        data: the ids that name the trial's data, with their values (``{"DATA_ROOT": "/data/spleen"}``).
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
        "folder, or add `--bundle_root /path/to/this/bundle` to run them from anywhere else. `--meta_file` may be "
        "left out: MONAI reads `metadata.json` next to the config.",
        "",
        "```bash",
        "cd /path/to/this/bundle",
        "# predict the validation list with models/model.pt: one label map per image, eval/<image>_seg.nii.gz",
        "python -m monai.bundle run --config_file configs/inference.json --meta_file configs/metadata.json",
        "# the same from any other folder",
        "python -m monai.bundle run --config_file /path/to/this/bundle/configs/inference.json \\",
        "    --bundle_root /path/to/this/bundle",
        "# train again (writes checkpoints into models/, next to model.pt)",
        "python -m monai.bundle run --config_file configs/train.json --meta_file configs/metadata.json",
        "# check the network against the metadata's input and output",
        "python -m monai.bundle verify_net_in_out network_def --meta_file configs/metadata.json \\",
        "    --config_file configs/inference.json",
        "# TorchScript",
        "python -m monai.bundle ckpt_export network_def --filepath models/model.ts --ckpt_file models/model.pt \\",
        "    --meta_file configs/metadata.json --config_file configs/inference.json",
        "# check the metadata (the schema ships with clara-hydra: clara_hydra/export/schema/)",
        "python -m monai.bundle verify_metadata --meta_file configs/metadata.json --filepath <that schema file>",
        "```",
        "",
        "Label maps: the argmax over the network's channels (class indices, one channel, `uint8`), in the "
        "source image's grid (shape, spacing, orientation and affine restored by inverting the "
        "pre-transforms), as NIfTI that viewers and MONAI Label open.",
        "",
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
