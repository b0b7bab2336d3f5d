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


def readme(trial: SelectedTrial, checkpoint: Path, variables: list[str], notes: list[str]) -> str:
    """``docs/README.md``: where the bundle came from and the commands that use it."""
    overrides = " ".join(trial.overrides) or "(none)"
    value = f"{trial.value:.6g}" if trial.value is not None else "n/a"
    shown = ", ".join(f"`{v}`" for v in variables[:12]) + (" ..." if len(variables) > 12 else "")
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
        "Run from any folder (paths in the configs are absolute; the bundle folder is `bundle_root`):",
        "",
        "```bash",
        "# train again (writes checkpoints into models/, next to model.pt)",
        "python -m monai.bundle run --config_file configs/train.json --meta_file configs/metadata.json",
        "# predict the validation list with models/model.pt; segmentations go to eval/",
        "python -m monai.bundle run --config_file configs/inference.json --meta_file configs/metadata.json",
        "# TorchScript",
        "python -m monai.bundle ckpt_export network_def --filepath models/model.ts --ckpt_file models/model.pt \\",
        "    --meta_file configs/metadata.json --config_file configs/inference.json",
        "# check the metadata (the schema ships with clara-hydra: clara_hydra/export/schema/)",
        "python -m monai.bundle verify_metadata --meta_file configs/metadata.json --filepath <that schema file>",
        "```",
        "",
        "The trial's Clara variables are top-level ids, so any of them can be overridden on the command line, "
        f"e.g. `--epochs 10` or `--DATA_ROOT /data/spleen`: {shown}. Moving the bundle: pass the new folders, e.g. "
        "`--MMAR_CKPT_DIR /new/place/models` (and `--ckpt_path`/`--output_dir` for inference.json).",
        "",
        "The configs contain no `$` expression: every object is a `_target_` item, links are `@` references.",
        "`device` is `ignite.distributed.device()`: CUDA when there is one, else the CPU.",
    ]
    if notes:
        lines += ["", "## Notes", "", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"
