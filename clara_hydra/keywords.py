"""One table for every reserved word: Clara's markers (read by the converter) and the markers of the
emitted Hydra tree (written by the converter, read by the runtime builder and the sweeper).

Keep this module free of heavy imports: the runtime, the sweeper and the converter all read it.
"""

from __future__ import annotations

from enum import Enum
from typing import Final


class SlotKind(str, Enum):
    """How a slot holds its components."""

    SINGLE = "single"  # one object; a list there is alternatives (exactly one enabled)
    TRANSFORMS = "transforms"  # a list composed in order
    LIST = "list"  # a list of objects (handlers)
    METRICS = "metrics"  # metrics keyed by log label


class Clara:
    """Markers of the Clara Train JSON language (SPEC §1-4)."""

    NAME: Final = "name"
    PATH: Final = "path"
    ARGS: Final = "args"
    SEARCH: Final = "search"
    APPLY: Final = "apply"
    DISABLED: Final = "disabled"
    DISABLED_ARG: Final = "@disabled"  # as a search arg or apply target
    LEGACY_DISABLED: Final = "DISABLED"  # 3.x `{"domain": "transform", "args": "DISABLED"}`
    RANK: Final = "rank"
    LOG_LABEL: Final = "log_label"
    IS_KEY_METRIC: Final = "is_key_metric"
    REF: Final = "ref"
    DATA_LIST_FILE_PATH: Final = "data_list_file_path"
    DATA_FILE_BASE_DIR: Final = "data_file_base_dir"
    DATA_LIST_KEY: Final = "data_list_key"
    TS_PATH: Final = "ts_path"
    CKPT_PATH: Final = "ckpt_path"
    ALIAS_SEP: Final = "#"  # "prob#myProb"
    REF_PREFIX: Final = "@"  # "@model"
    EXPR_PREFIX: Final = "#"  # "#@model.parameters()"
    CONF_REF: Final = "@conf"
    LEGACY_LR_SEARCH: Final = "lr_search"
    # Search entry keys.
    DOMAIN: Final = "domain"
    TYPE: Final = "type"
    TARGETS: Final = "targets"
    DOMAINS: Final = ("lr", "net", "transform")
    TYPES: Final = ("float", "enum")
    # Sections of a training config.
    TRAIN: Final = "train"
    VALIDATE: Final = "validate"
    SECTIONS: Final = ("train", "validate")
    ATTRIBUTES: Final = (
        "disabled",
        "rank",
        "log_label",
        "is_key_metric",
        "data_list_file_path",
        "data_file_base_dir",
        "data_list_key",
        "ts_path",
        "ckpt_path",
    )
    # Keys that make an object a component (4.1 validation model loaders have only ts_path/ckpt_path).
    COMPONENT_KEYS: Final = ("name", "path", "ref", "ts_path", "ckpt_path")
    # Keys of a component besides its attributes.
    STRUCTURE_KEYS: Final = ("name", "path", "ref", "args", "search", "apply")
    COMMENT_PREFIXES: Final = ("_", "/")  # keys starting so are comments (Clara ignored them)
    # Clara 3.x (TensorFlow-era) slot names: a file with them is 3.x.
    LEGACY_3X_SLOTS: Final = ("lr_policy", "image_pipeline", "aux_ops")
    # Every slot Clara knows and how it holds its components: the one table (parser, lowering, runtime).
    SLOT_KINDS: Final = {
        "loss": SlotKind.SINGLE,
        "optimizer": SlotKind.SINGLE,
        "lr_scheduler": SlotKind.SINGLE,
        "model": SlotKind.SINGLE,
        "dataset": SlotKind.SINGLE,
        "dataloader": SlotKind.SINGLE,
        "inferer": SlotKind.SINGLE,
        "trainer": SlotKind.SINGLE,
        "evaluator": SlotKind.SINGLE,
        "pre_transforms": SlotKind.TRANSFORMS,
        "post_transforms": SlotKind.TRANSFORMS,
        "handlers": SlotKind.LIST,
        # Metrics are keyed by their log label, the key metric too (engines take {label: metric}).
        "key_metric": SlotKind.METRICS,
        "additional_metrics": SlotKind.METRICS,
        "metrics": SlotKind.METRICS,
    }
    # Views of SLOT_KINDS.
    SINGLE_SLOTS: Final = tuple(k for k, v in SLOT_KINDS.items() if v is SlotKind.SINGLE)
    TRANSFORM_SLOTS: Final = tuple(k for k, v in SLOT_KINDS.items() if v is SlotKind.TRANSFORMS)
    LIST_SLOTS: Final = tuple(k for k, v in SLOT_KINDS.items() if v in (SlotKind.LIST, SlotKind.METRICS))

    @staticmethod
    def is_comment(key: str) -> bool:
        """Keys starting with ``_`` or ``/`` are comments in Clara files."""
        return key.startswith(Clara.COMMENT_PREFIXES)


class Emitted:
    """Markers of the Hydra tree we emit. What each does is :data:`clara_hydra.tree_nodes.TABLE`, the one reader
    of the tree that the runtime builder, the data cache and both exporters share.

    A node ``{_target_: pkg.Class, ...}`` builds one object (Hydra's key). Our own keys:

    - ``{_ref_: train.model}``: the object built for that slot; every reference gets the *same* object.
    - ``{_config_: true}``: the whole composed config, resolved, as plain containers (Clara's ``@conf``).
    - ``_disabled_: <bool>`` on a node: dropped from its list (or from its alternatives) when true.
    - ``_rank_: <int>`` on a handler: built only on that distributed rank.
    - ``{_compose_: true, name: node, ...}``: ordered transforms, built into ``monai.transforms.Compose``.
    - ``{_list_: true, name: node, ...}``: ordered members, built into a list.
    - ``{_one_of_: true, name: node, ...}``: alternatives for a single-object slot; exactly one must be enabled.
    Disabled members of these three are dropped. Member names are snake_case class names, so any argument can be
    overridden from the command line (``train.pre_transforms.rand_flipd.prob=0.3``).
    - ``_partial_: true`` (Hydra's key): a ``functools.partial`` of the target instead of a call.
    - ``_allow_: [module, ...]`` at top level: extra modules whose targets may be built (Clara BYOC ``path``).
    """

    TARGET: Final = "_target_"
    PARTIAL: Final = "_partial_"
    ARGS: Final = "_args_"
    REF: Final = "_ref_"
    CONFIG: Final = "_config_"
    DISABLED: Final = "_disabled_"
    RANK: Final = "_rank_"
    ONE_OF: Final = "_one_of_"
    COMPOSE: Final = "_compose_"
    LIST: Final = "_list_"
    ALLOW: Final = "_allow_"
    CONVERT: Final = "_convert_"  # Hydra's instantiate option; the builder ignores it
    RECURSIVE: Final = "_recursive_"  # Hydra's instantiate option; the builder ignores it
    UNKNOWN: Final = "???"  # OmegaConf's missing value: what could not be carried over
    # Top-level keys of the emitted config.yaml that no Clara name may take.
    RESERVED_TOP: Final = ("hydra", "defaults", "train", "validate", ALLOW)


class Sweep:
    """Functions of Hydra's sweep grammar that the converter emits and the sweeper parses."""

    INTERVAL: Final = "interval"
    CHOICE: Final = "choice"
    RANGE: Final = "range"
    INT: Final = "int"
    TAG: Final = "tag"
    LOG: Final = "log"
    SWEEPER_NAME: Final = "clara_optuna"  # hydra/sweeper option that selects our plugin
