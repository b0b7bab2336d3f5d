"""The staged data cache (issue 14 item 4): the seed's a_min/a_max options load and resample once."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import DictConfig

from clara_hydra.runtime.build import Builder
from clara_hydra.runtime.cache import DataCache, build_dataset, nbytes_of
from clara_hydra.runtime.cache_plan import plan
from clara_hydra.runtime.cache_settings import GB, CacheSettings
from clara_hydra.runtime.cache_stages import stage_boundary, stages_wanted

Composer = Callable[..., DictConfig]
STAGED = CacheSettings(enabled=True, max_bytes=GB, disk=False, stages=True)
UNSTAGED = CacheSettings(enabled=True, max_bytes=GB, disk=False, stages=False)
# The seed example's three a_min/a_max choices: its defaults (-57, 164) and the two options of the group.
OPTIONS: tuple[tuple[str, ...], ...] = ((), ("a_min_a_max=m50_100",), ("a_min_a_max=m60_150",))


@pytest.fixture()
def loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts the files MONAI's image readers really read (each reader's ``read`` wrapped, then called)."""
    from monai.data import image_reader

    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def wrap(read: Callable[..., Any]) -> Callable[..., Any]:
        def counting(self: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                for name in [data] if isinstance(data, str | Path) else data:
                    counts[str(Path(name).resolve())] += 1
            return read(self, data, *args, **kwargs)

        return counting

    for cls in vars(image_reader).values():
        if isinstance(cls, type) and issubclass(cls, image_reader.ImageReader) and "read" in vars(cls):
            monkeypatch.setattr(cls, "read", wrap(vars(cls)["read"]))
    yield counts


def _items(cfg: DictConfig, cache: DataCache, settings: CacheSettings, path: str = "train.dataset") -> list[Any]:
    return list(build_dataset(Builder(cfg), path, settings, cache)._cache)


def same(a: Any, b: Any) -> bool:
    """Equal to the bit: types, values, dtypes, strides, metadata and applied operations.

    Not the ``id`` of the transform object that recorded an operation (MONAI's ``TraceKeys.ID``): two builds of one
    config are two objects, so two unstaged computations differ there too.
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        values = torch.equal(torch.as_tensor(a), torch.as_tensor(b)) and a.dtype == b.dtype and a.stride() == b.stride()
        if not hasattr(a, "meta"):
            return values
        ops = same(_without_ids(a.applied_operations), _without_ids(b.applied_operations))
        return values and ops and same(a.meta, b.meta)
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) or (a != a and b != b)


def _without_ids(ops: Any) -> Any:
    from monai.utils import TraceKeys

    if isinstance(ops, dict):
        return {k: "<id>" if k == TraceKeys.ID else _without_ids(v) for k, v in ops.items()}
    if isinstance(ops, list | tuple):
        return type(ops)(_without_ids(v) for v in ops)
    return ops


def _fresh(cfg: DictConfig) -> list[Any]:
    """The unstaged computation: a cache of its own, no stages (MONAI's ``_load_cache_item`` on each item)."""
    return _items(cfg, DataCache(), UNSTAGED)


def test_three_a_min_a_max_options_load_each_file_once(
    compose_cfg: Composer, loads: Counter[str], caplog: pytest.LogCaptureFixture
) -> None:
    cache = DataCache()
    cfgs = [compose_cfg(*option) for option in OPTIONS]
    with caplog.at_level(logging.INFO, logger="clara_hydra.runtime"):
        staged = [_items(cfg, cache, STAGED) for cfg in cfgs]
    files = {str(Path(v).resolve()) for item in plan(Builder(cfgs[0]), "train.dataset").data for v in item.values()}  # type: ignore[union-attr]
    assert len(files) == 4 and dict(loads) == dict.fromkeys(files, 1), "one load per file for all three options"
    assert (cache.stats.misses, cache.stats.stage_hits, cache.stats.stages_kept) == (3, 2, 1)
    assert cache.stats.items_computed == 2 and cache.stats.items_from_stage == 4
    assert len(cache.entries) == 4, "three whole prefixes and the stage load_imaged+ensure_channel_firstd"
    assert "stage load_imaged+ensure_channel_firstd of train.dataset kept" in caplog.text
    assert (
        "loaded data reused from stage load_imaged+ensure_channel_firstd" in caplog.text
        and "scale_intensity_ranged+crop_foregroundd computed" in caplog.text
    )
    loads.clear()
    for cfg, got in zip(cfgs, staged, strict=True):
        assert same(got, _fresh(cfg)), "staged items equal the unstaged computation to the bit"
    assert not same(staged[0], staged[1]), "the options do differ"


def test_an_evicted_stage_is_computed_again(compose_cfg: Composer, loads: Counter[str]) -> None:
    cache = DataCache()
    a, b, c = (compose_cfg(*option) for option in OPTIONS)
    _items(a, cache, STAGED)  # the stage, then the whole prefix of a: the stage is the least recently used
    stage_key = plan(Builder(a), "train.dataset").stage_keys[2]  # type: ignore[union-attr]
    assert stage_key in cache.entries
    # Room for a's entry and one more of its size (CropForegroundd adds a few bytes of coordinates to the stage's).
    tight = CacheSettings(enabled=True, max_bytes=cache.nbytes + 1024, disk=False, stages=False)
    _items(b, cache, tight)  # b's entry pushes the stage out (LRU), a's whole prefix stays
    assert stage_key not in cache.entries and cache.stats.evictions == 1 and len(cache.entries) == 2
    got = _items(c, cache, STAGED)  # no stage: c loads again, keeps a new stage
    assert set(loads.values()) == {3} and stage_key in cache.entries and cache.stats.stage_hits == 0
    assert same(got, _fresh(c))


def test_a_stage_that_does_not_fit_with_its_entry_is_not_kept(
    compose_cfg: Composer, loads: Counter[str], caplog: pytest.LogCaptureFixture
) -> None:
    probe = DataCache()
    _items(compose_cfg(), probe, STAGED)
    full = max(e.nbytes for e in probe.entries.values() if " stage " not in e.label)
    bound = CacheSettings(enabled=True, max_bytes=full + 1, disk=False, stages=True)
    cache = DataCache()
    loads.clear()
    with caplog.at_level(logging.INFO, logger="clara_hydra.runtime"):
        got = [_items(compose_cfg(*option), cache, bound) for option in OPTIONS[:2]]
    assert cache.stats.stages_kept == 0 and "load_imaged+ensure_channel_firstd of train.dataset not kept" in caplog.text
    assert set(loads.values()) == {2}, "no stage: each option loads"
    assert same(got[1], _fresh(compose_cfg(*OPTIONS[1])))


def test_a_prefix_without_an_intensity_tail_keeps_no_extra_stage(compose_cfg: Composer) -> None:
    cfg = compose_cfg("~train.pre_transforms.scale_intensity_ranged")
    p = plan(Builder(cfg), "train.dataset")
    assert p is not None and p.prefix == ["load_imaged", "ensure_channel_firstd", "crop_foregroundd"]
    assert stage_boundary(p.transform, len(p.prefix)) is None
    cache = DataCache()
    _items(cfg, cache, STAGED)
    assert len(cache.entries) == 1 and cache.stats.stages_kept == 0


def test_stage_boundaries_of_monai_pipelines() -> None:
    from monai.transforms import (
        Compose,
        CropForegroundd,
        EnsureChannelFirstd,
        LoadImaged,
        NormalizeIntensityd,
        Orientationd,
        RandFlipd,
        ScaleIntensityRanged,
        Spacingd,
    )

    keys = ["image"]
    load, channel = LoadImaged(keys), EnsureChannelFirstd(keys)
    spacing, orient = Spacingd(keys, pixdim=(2, 2, 2)), Orientationd(keys, axcodes="RAS")
    scale = ScaleIntensityRanged(keys, a_min=0, a_max=1, b_min=0, b_max=1)
    crop = CropForegroundd(keys, source_key="image")
    # The benchmark's prefix: loading and resampling are kept, the windowing and the crop after it are not.
    assert stage_boundary(Compose([load, channel, spacing, scale, crop, RandFlipd(keys)]), 5) == 3
    assert stage_boundary(Compose([load, orient, spacing, NormalizeIntensityd(keys)]), 4) == 3
    assert stage_boundary(Compose([scale, load]), 2) is None, "nothing before the first intensity transform"
    assert stage_boundary(Compose([load, channel, spacing]), 3) is None, "no tail: the whole prefix is the entry"
    lazy = Compose([load, channel, spacing, scale], lazy=True)  # lazy resampling: a split would resample twice
    assert stage_boundary(lazy, 4) is None


def test_stages_are_on_in_a_sweep_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from clara_hydra.trial_context import ENV_TRIAL

    auto = CacheSettings(enabled=True, max_bytes=GB, disk=False)
    monkeypatch.delenv(ENV_TRIAL, raising=False)
    assert not stages_wanted(auto), "one trial per process: a stage would only hold memory"
    monkeypatch.setenv(ENV_TRIAL, '{"number": 0}')
    assert stages_wanted(auto) and not stages_wanted(UNSTAGED)
    monkeypatch.setenv("CLARA_HYDRA_CACHE_STAGES", "0")
    assert CacheSettings.from_config(DictConfig({"clara_cache": {"stages": True}})).stages is False
    monkeypatch.delenv("CLARA_HYDRA_CACHE_STAGES")
    assert CacheSettings.from_config(DictConfig({"clara_cache": {"stages": "auto"}})).stages is None


def test_disk_cache_entries_of_options_computed_from_a_stage(compose_cfg: Composer, tmp_path: Path) -> None:
    """Trials in other processes (disk cache on): the whole-prefix disk entries stay right when a stage is used."""
    disk = CacheSettings(enabled=True, max_bytes=GB, disk=True, dir=tmp_path / "cache", stages=True)
    cache = DataCache()
    a, b = compose_cfg(*OPTIONS[0]), compose_cfg(*OPTIONS[1])
    _items(a, cache, disk)
    computed = _items(b, cache, disk)
    assert cache.stats.stage_hits == 1 and cache.stats.items_from_stage == len(computed)
    later = DataCache()  # another process: b's whole prefix comes from its disk entry
    from_disk = _items(b, later, disk)
    assert later.stats.items_from_disk == len(computed) and later.stats.items_computed == 0
    assert all(same(x["image"], y["image"]) for x, y in zip(from_disk, _fresh(b), strict=True))
    assert nbytes_of(from_disk) == nbytes_of(computed)


def test_a_resampling_stage_gives_the_unstaged_items(compose_cfg: Composer, tmp_path: Path) -> None:
    """The benchmark's prefix (Spacingd after EnsureChannelFirstd): the stage holds the resampled volumes."""
    import importlib
    import sys

    bench_dir = str(Path(__file__).resolve().parents[2] / "tools" / "bench")
    sys.path.insert(0, bench_dir)
    try:
        conf = importlib.import_module("sweep_speed").bench_conf(tmp_path / "bench_conf")
    finally:
        sys.path.remove(bench_dir)
    cache = DataCache()
    cfgs = [compose_cfg(*option, config_dir=conf) for option in OPTIONS]
    staged = [_items(cfg, cache, STAGED) for cfg in cfgs]
    assert cache.stats.stage_hits == 2 and cache.stats.items_computed == 2
    p = plan(Builder(cfgs[0]), "train.dataset")
    assert p is not None and p.prefix[:3] == ["load_imaged", "ensure_channel_firstd", "spacingd"]
    assert p.stage_keys[3] in cache.entries
    assert staged[0][0]["image"].shape[1:] == (16, 16, 16), "32^3 at 1 mm resampled to 2 mm"
    for cfg, got in zip(cfgs, staged, strict=True):
        assert same(got, _fresh(cfg))
