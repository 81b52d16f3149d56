"""The checkpoint store of Ray Train's local mode: what it keeps, what a resume and the best pick read."""

from __future__ import annotations

from pathlib import Path

from mlops_ray.train.local_checkpoints import LocalCheckpoints


def checkpoint(tmp_path: Path, epoch: int) -> Path:
    folder = tmp_path / f"written-{epoch}"
    folder.mkdir()
    (folder / "model.pt").write_text(f"weights of epoch {epoch}")
    return folder


def test_the_best_by_the_metric_and_the_newest_are_kept(tmp_path: Path) -> None:
    store = LocalCheckpoints(tmp_path / "run", keep=2, metric="val_loss", mode="min")
    for epoch, loss in [(1, 0.9), (2, 0.3), (3, 0.5), (4, 0.2), (5, 0.7)]:
        store.save(checkpoint(tmp_path, epoch), {"epoch": epoch, "val_loss": loss})
    kept = [(path.name, metrics["val_loss"]) for path, metrics in store.kept()]
    assert kept == [
        ("checkpoint_epoch_000002", 0.3),
        ("checkpoint_epoch_000004", 0.2),
        ("checkpoint_epoch_000005", 0.7),
    ]
    best = store.best()
    assert best is not None and best[0].name == "checkpoint_epoch_000004"
    latest = store.latest()
    assert latest is not None and (latest / "model.pt").read_text() == "weights of epoch 5"


def test_max_mode_ranks_the_other_way_and_an_empty_store_has_nothing(tmp_path: Path) -> None:
    store = LocalCheckpoints(tmp_path / "run", keep=1, metric="val_accuracy", mode="max")
    assert store.latest() is None and store.best() is None and store.kept() == []
    for epoch, accuracy in [(1, 0.8), (2, 0.9), (3, 0.7)]:
        store.save(checkpoint(tmp_path, epoch), {"epoch": epoch, "val_accuracy": accuracy})
    assert [p.name for p, _ in store.kept()] == ["checkpoint_epoch_000002", "checkpoint_epoch_000003"]
    assert store.best()[0].name == "checkpoint_epoch_000002"  # type: ignore[index]


def test_a_folder_without_its_metrics_is_not_a_checkpoint(tmp_path: Path) -> None:
    store = LocalCheckpoints(tmp_path / "run", keep=2, metric="val_loss", mode="min")
    (tmp_path / "run" / "checkpoint_epoch_000009").mkdir(parents=True)  # e.g. a copy cut short by a crash
    (tmp_path / "run" / "checkpoint_2026-12-05_01-02-03.000000").mkdir()  # a worker group's, ranked by Ray Train
    assert store.latest() is None
    store.save(checkpoint(tmp_path, 1), {"epoch": 1, "val_loss": 1.0})
    assert store.latest() == tmp_path / "run" / "checkpoint_epoch_000001"
