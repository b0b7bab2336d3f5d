"""The data cache shared by trials (issue 5): reuse, keys, equal results, memory bound, disk copy."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import DictConfig

from clara_hydra.runtime import task
from clara_hydra.runtime.build import Builder
from clara_hydra.runtime.cache import DataCache, build_dataset, nbytes_of
from clara_hydra.runtime.cache_plan import plan
from clara_hydra.runtime.cache_settings import GB, CacheSettings
from clara_hydra.runtime.device import configure_threads, usable_cores
from clara_hydra.runtime.diskcache import DiskCache

Composer = Callable[..., DictConfig]
MEMORY = CacheSettings(enabled=True, max_bytes=GB, disk=False)


# The session's data cache: what the task function keeps per process, here one per test.
CACHE = DataCache()


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    CACHE.clear()
    yield
    CACHE.clear()


def _dataset(cfg: DictConfig, path: str = "train.dataset", settings: CacheSettings = MEMORY) -> Any:
    return build_dataset(Builder(cfg), path, settings, CACHE)


def test_equal_preprocessing_reuses_the_cache_without_loading(compose_cfg: Composer) -> None:
    first = _dataset(compose_cfg())
    assert (CACHE.stats.misses, CACHE.stats.items_computed) == (1, len(first))
    # myProb is RandShiftIntensityd.prob: after the first random transform, so not part of the key.
    second = _dataset(compose_cfg("myProb=0.1", "learning_rate=0.001"))
    assert CACHE.stats.hits == 1 and CACHE.stats.items_computed == len(first), "nothing loaded again"
    assert second._cache is first._cache, "both datasets serve the same cached items"
    assert len(CACHE.entries) == 1


def test_searched_a_min_a_max_makes_one_cache_per_choice(compose_cfg: Composer) -> None:
    for option in ("m50_100", "m60_150", "m50_100", "m60_150"):
        _dataset(compose_cfg(f"a_min_a_max={option}"))
    _dataset(compose_cfg())  # the defaults (a_min=-57, a_max=164): a third key
    assert (CACHE.stats.misses, CACHE.stats.hits, len(CACHE.entries)) == (3, 2, 3)


def test_key_ignores_the_random_suffix_and_follows_the_prefix(compose_cfg: Composer) -> None:
    key = plan(Builder(compose_cfg()), "train.dataset")
    assert key is not None
    assert key.prefix == ["load_imaged", "ensure_channel_firstd", "scale_intensity_ranged", "crop_foregroundd"]
    same = plan(Builder(compose_cfg("myProb=0.9", "train.pre_transforms.rand_gaussian_noised=null")), "train.dataset")
    other = plan(Builder(compose_cfg("+train.pre_transforms.crop_foregroundd.margin=2")), "train.dataset")
    fewer = plan(Builder(compose_cfg("train.dataset.cache_rate=0.5")), "train.dataset")
    assert same is not None and other is not None and fewer is not None
    assert same.key == key.key and other.key != key.key and fewer.key != key.key


def test_the_cache_joins_the_builder_through_its_factory_hook(compose_cfg: Composer) -> None:
    """Every CacheDataset the builder meets goes through the attached session; the builder memoises it itself."""
    builder = Builder(compose_cfg())
    CACHE.attach(builder, MEMORY)
    loader = builder.build("train.dataloader")  # the dataset is built through the dataloader's _ref_
    assert CACHE.stats.misses == 1 and loader.dataset is builder.build("train.dataset")
    other = DataCache()  # another session shares nothing with this one
    build_dataset(Builder(compose_cfg()), "train.dataset", MEMORY, other)
    assert other.stats.misses == 1 and CACHE.stats.hits == 0
    build_dataset(Builder(compose_cfg()), "train.dataset", MEMORY, CACHE)
    assert CACHE.stats.hits == 1


def test_datasets_that_do_not_qualify_are_built_as_configured(compose_cfg: Composer) -> None:
    cfg = compose_cfg("train.dataset._target_=monai.data.Dataset", "~train.dataset.cache_num",
                      "~train.dataset.cache_rate", "~train.dataset.num_workers")  # fmt: skip
    assert plan(Builder(cfg), "train.dataset") is None
    assert type(_dataset(cfg)).__name__ == "Dataset" and CACHE.stats.misses == 0
    assert plan(Builder(compose_cfg("+train.dataset.copy_cache=false")), "train.dataset") is None


@pytest.mark.slow
def test_results_with_and_without_the_cache_are_equal(
    compose_cfg: Composer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    filled = task.run(compose_cfg(), job_dir=tmp_path / "a", data_cache=CACHE)  # fills the cache
    reused = task.run(compose_cfg(), job_dir=tmp_path / "b", data_cache=CACHE)  # served from it
    assert CACHE.stats.hits == 2, "train and validate datasets came from the cache"
    monkeypatch.setenv("CLARA_HYDRA_CACHE", "0")
    CACHE.clear()
    plain = task.run(compose_cfg(), job_dir=tmp_path / "c", data_cache=CACHE)
    assert CACHE.stats.misses == 0 and CACHE.stats.hits == 0, "disabled: MONAI's own caching only"
    assert filled == reused == plain


def test_memory_bound_evicts_least_recently_used_and_says_so(
    compose_cfg: Composer, caplog: pytest.LogCaptureFixture
) -> None:
    size = nbytes_of(_dataset(compose_cfg())._cache)
    CACHE.clear()
    bound = CacheSettings(enabled=True, max_bytes=int(size * 1.5), disk=False)
    with caplog.at_level(logging.WARNING, logger="clara_hydra.runtime.cache"):
        _dataset(compose_cfg(), settings=bound)
        _dataset(compose_cfg("a_min_a_max=m50_100"), settings=bound)
    assert CACHE.stats.evictions == 1 and len(CACHE.entries) == 1
    assert "data cache evicted train.dataset" in caplog.text and "clara_cache.max_gb" in caplog.text
    tiny = CacheSettings(enabled=True, max_bytes=size // 2, disk=False)
    with caplog.at_level(logging.WARNING, logger="clara_hydra.runtime.cache"):
        _dataset(compose_cfg("a_min_a_max=m60_150"), settings=tiny)
    assert CACHE.stats.refused == 1 and "data cache disabled for train.dataset" in caplog.text


def test_disk_cache_with_two_concurrent_writers(compose_cfg: Composer, tmp_path: Path) -> None:
    cfg = compose_cfg()
    reference = _dataset(cfg)._cache
    settings = CacheSettings(enabled=True, max_bytes=GB, disk=True, dir=tmp_path / "cache")
    p = plan(Builder(cfg), "train.dataset")
    assert p is not None
    folder = DiskCache.for_key(p.key, settings).folder
    assert folder == tmp_path / "cache" / p.key
    results: list[tuple[int, int]] = []

    def writer() -> None:  # each fills its own list for its own dataset, into the same folder
        dataset = p.cls(data=p.data, transform=p.transform, **p.kwargs, runtime_cache=True)
        results.append(DiskCache(folder).fill(dataset, dataset._cache))

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and sum(loaded + computed for loaded, computed in results) == 2 * len(reference)
    assert sorted(f.name for f in folder.iterdir()) == [f"item_{i:05d}.pt" for i in range(len(reference))]
    CACHE.clear()  # a new process: nothing in memory, everything on disk
    from_disk = build_dataset(Builder(cfg), "train.dataset", settings, CACHE)._cache
    assert CACHE.stats.items_from_disk == len(reference) and CACHE.stats.items_computed == 0
    for got, want in zip(from_disk, reference, strict=True):
        assert torch.equal(got["image"], want["image"]) and torch.equal(got["label"], want["label"])


def test_settings_from_config_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = DictConfig({"clara_cache": {"max_gb": 0.5, "disk": "auto", "enabled": True}})
    settings = CacheSettings.from_config(cfg)
    assert settings.max_bytes == GB // 2 and settings.disk is None and settings.enabled
    monkeypatch.setenv("CLARA_HYDRA_CACHE_MAX_GB", "2")
    monkeypatch.setenv("CLARA_HYDRA_CACHE_DISK", "1")
    settings = CacheSettings.from_config(cfg)
    assert settings.max_bytes == 2 * GB and settings.disk is True
    assert CacheSettings.from_config(DictConfig({})).max_bytes > 0  # a fraction of the available RAM
    from clara_hydra.errors import BuildError

    monkeypatch.setenv("CLARA_HYDRA_CACHE_MAX_GB", "lots")
    with pytest.raises(BuildError, match="CLARA_HYDRA_CACHE_MAX_GB='lots'"):
        CacheSettings.from_config(cfg)


def test_threads_are_shared_between_concurrent_trials() -> None:
    before = torch.get_num_threads()
    try:
        assert configure_threads(concurrent=2) == max(usable_cores() // 2, 1)
        assert torch.get_num_threads() == max(usable_cores() // 2, 1)
        assert configure_threads(concurrent=1) == usable_cores()
    finally:
        torch.set_num_threads(before)


def test_disk_cache_items_round_trip_exactly(compose_cfg: Composer, tmp_path: Path) -> None:
    """The plain-data format (read with weights_only=True) gives back the same MetaTensors and metadata."""
    import numpy as np

    from clara_hydra.runtime.diskcache import FORMAT

    cfg = compose_cfg()
    settings = CacheSettings(enabled=True, max_bytes=GB, disk=True, dir=tmp_path / "cache")
    reference = build_dataset(Builder(cfg), "train.dataset", settings, CACHE)._cache  # computed and written
    CACHE.clear()
    from_disk = build_dataset(Builder(cfg), "train.dataset", settings, CACHE)._cache
    assert CACHE.stats.items_from_disk == len(reference)
    stored = torch.load(next((tmp_path / "cache").glob("*/item_00000.pt")), weights_only=True)
    assert stored["format"] == FORMAT

    def same(a: Any, b: Any) -> bool:
        if type(a) is not type(b):
            return False
        if isinstance(a, torch.Tensor):
            tensors = torch.equal(torch.as_tensor(a), torch.as_tensor(b)) and a.dtype == b.dtype
            meta = not hasattr(a, "meta") or (same(a.meta, b.meta) and same(a.applied_operations, b.applied_operations))
            return tensors and meta
        if isinstance(a, np.ndarray):
            return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        if isinstance(a, dict):
            return (
                [type(k) for k in a] == [type(k) for k in b] and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
            )
        if isinstance(a, list | tuple):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
        return bool(a == b) or (a != a and b != b)

    assert all(same(got, want) for got, want in zip(from_disk, reference, strict=True))


@pytest.mark.parametrize("replace", ["cp -p", "rewrite in place, mtime kept"])
def test_a_replaced_file_is_a_new_key_even_with_size_and_mtime_kept(
    replace: str, compose_cfg: Composer, demo_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import os
    import shutil

    data = tmp_path / "data"
    shutil.copytree(demo_root, data)
    cfg = compose_cfg(f"DATA_ROOT={data}", f"DATASET_JSON={data / 'dataset.json'}")
    before = plan(Builder(cfg), "train.dataset")
    image = Path(before.data[0]["image"]) if before else None
    assert before is not None and image is not None
    st = image.stat()
    if replace == "cp -p":  # what cp -p / rsync -a do: a new file with the old size and mtime, renamed over
        shutil.copy2(image, image.with_suffix(".tmp"))
        os.replace(image.with_suffix(".tmp"), image)
    else:
        image.write_bytes(image.read_bytes())
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = plan(Builder(cfg), "train.dataset")
    assert after is not None and (image.stat().st_size, image.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert after.key != before.key
    with caplog.at_level(logging.INFO):
        _dataset(cfg)
    assert "path+size+mtime+inode+ctime" in caplog.text


def test_cached_items_invert_with_a_later_trials_transforms(compose_cfg: Composer) -> None:
    """MONAI's inverse checks the id of the transform object that recorded an operation; a later trial (or another
    process, through the disk cache) has its own objects, so cached items carry TraceKeys.NONE there."""
    import copy

    from monai.transforms import Compose

    _dataset(compose_cfg())  # trial 1 computes the items
    dataset = _dataset(compose_cfg())  # trial 2: its own transform objects, the cached items
    assert CACHE.stats.hits == 1
    p = plan(Builder(compose_cfg()), "train.dataset")
    assert p is not None
    prefix = Compose(dataset.transform.transforms[: len(p.prefix)])
    item = copy.deepcopy(dataset._cache[0])
    assert item["image"].applied_operations, "CropForegroundd recorded an operation"
    restored = prefix.inverse(item)
    assert restored["image"].shape == (1, 32, 32, 32) and not restored["image"].applied_operations
