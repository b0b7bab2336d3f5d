"""One table for every reserved word: Clara's markers (read by the converter) and the markers of the
emitted Hydra tree (written by the converter, read by the runtime builder and the sweeper).

Keep this module free of heavy imports: the runtime, the sweeper and the converter all read it.
"""

from __future__ import annotations

from typing import Final


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
    # Slots that hold one object (a list there means alternatives, exactly one enabled).
    SINGLE_SLOTS: Final = (
        "loss",
        "optimizer",
        "lr_scheduler",
        "model",
        "dataset",
        "dataloader",
        "inferer",
        "key_metric",
        "trainer",
        "evaluator",
    )
    # Slots that hold a list of transforms (composed in order where a transform is expected).
    TRANSFORM_SLOTS: Final = ("pre_transforms", "post_transforms")
    # Slots that hold a list of other objects.
    LIST_SLOTS: Final = ("handlers", "additional_metrics", "metrics")


class Emitted:
    """Markers of the Hydra tree we emit, read by :mod:`clara_hydra.runtime.build`.

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
    MARKERS: Final = (
        "_target_",
        "_partial_",
        "_args_",
        "_ref_",
        "_config_",
        "_disabled_",
        "_rank_",
        "_one_of_",
        "_compose_",
        "_list_",
    )


class Sweep:
    """Functions of Hydra's sweep grammar that the converter emits and the sweeper parses."""

    INTERVAL: Final = "interval"
    CHOICE: Final = "choice"
    RANGE: Final = "range"
    INT: Final = "int"
    TAG: Final = "tag"
    LOG: Final = "log"
    SWEEPER_NAME: Final = "clara_optuna"  # hydra/sweeper option that selects our plugin
