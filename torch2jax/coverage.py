"""`torch2jax coverage`: what the tables map, weighted by how often real code calls each API."""
from __future__ import annotations

from pathlib import Path

from torch2jax.mappings import load_tables

FREQUENCY_FILES = (Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "torch-api-frequency.tsv",)


# in-place methods the in-place pass writes itself (the others become their out-of-place twin, which the tables map)
INPLACE_WRITTEN = ("copy_", "zero_", "fill_")


def mapped_apis() -> set[str]:
    """Qualified names (and Tensor.NAME) of every mapped torch API: the tables' records, and what the passes
    translate without a record (grad-mode contexts, backward() and clipping in training loops, autocast, in-place
    methods whose out-of-place twin is mapped)."""
    from torch2jax.transform.grad_mode import GRAD_CONTEXTS
    from torch2jax.transform.inplace import TORCH_INPLACE
    from torch2jax.transform.training import CLIP_FUNCTIONS
    from torch2jax.transform.transforms import AUTOCASTS

    tables = load_tables()
    names = set(tables.records)
    names |= {f"Tensor.{m}" for m in tables.methods}
    names |= set(GRAD_CONTEXTS) | set(CLIP_FUNCTIONS) | set(AUTOCASTS) | {"Tensor.backward"}
    names |= {f"Tensor.{m}" for m in TORCH_INPLACE
              if m in INPLACE_WRITTEN or f"Tensor.{m[:-1]}" in names or f"torch.{m[:-1]}" in names}
    return names


def _frequencies() -> list[tuple[str, int]]:
    for path in FREQUENCY_FILES:
        if path.exists():
            rows = []
            for line in path.read_text().splitlines():
                parts = line.split("\t")
                if line.startswith("#") or parts[0] == "api" or len(parts) < 3:
                    continue
                rows.append((parts[0], int(parts[2])))
            return rows
    return []


def coverage_report(show_unmapped: bool = False) -> str:
    mapped = mapped_apis()
    records = load_tables().all_records()
    lines = [f"{len(mapped)} torch APIs mapped ({len(records)} table records)"]
    freq = _frequencies()
    if freq:
        total = sum(n for _, n in freq)
        hit = [(api, n) for api, n in freq if api in mapped]
        covered = sum(n for _, n in hit)
        lines.append(f"real-world usage covered: {covered}/{total} call sites ({100 * covered / total:.1f}%), "
                     f"{len(hit)}/{len(freq)} of the APIs seen in the frequency table")
        if show_unmapped:
            lines.append("most used unmapped APIs:")
            lines += [f"  {n:6d}  {api}" for api, n in freq if api not in mapped][:60]
    return "\n".join(lines)
