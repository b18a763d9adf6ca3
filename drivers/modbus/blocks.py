"""Block planning: read the configured points of a device in the fewest transactions.

On RS-485 at 9600-19200 baud one transaction costs 30-80 ms, most of it fixed overhead, so two
registers three apart are cheaper to read as one block of five than as two requests. Points are
sorted per table and merged greedily while the block stays within `max_block` and each hole is at
most `max_gap` unused registers; for sorted intervals this greedy cover is minimal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from drivers.modbus.settings import BIT_TABLES

BITS_PER_REGISTER = 16


@dataclass(frozen=True)
class Slot:
    """One point's place: `key` identifies it (an endpoint id), `address`/`width` in its table."""

    key: int
    table: str
    address: int
    width: int

    @property
    def end(self) -> int:
        return self.address + self.width


@dataclass
class Block:
    table: str
    start: int
    count: int
    slots: list[Slot] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.start + self.count

    @property
    def bridged(self) -> bool:
        """Does the block read registers no point asked for?"""
        return sum(s.width for s in _distinct(self.slots)) < self.count


def _distinct(slots: Iterable[Slot]) -> list[Slot]:
    seen: dict[tuple[int, int], Slot] = {}
    for slot in slots:
        seen.setdefault((slot.address, slot.width), slot)
    return list(seen.values())


def plan_blocks(slots: Iterable[Slot], max_block: int, max_gap: int) -> list[Block]:
    """Contiguous read blocks covering every slot. Bit tables count their limits ×16."""
    blocks: list[Block] = []
    by_table: dict[str, list[Slot]] = {}
    for slot in slots:
        by_table.setdefault(slot.table, []).append(slot)
    for table in sorted(by_table):
        factor = BITS_PER_REGISTER if table in BIT_TABLES else 1
        limit, gap = max_block * factor, max_gap * factor
        current: Block | None = None
        for slot in sorted(by_table[table], key=lambda s: (s.address, s.width)):
            if slot.width > limit:
                raise ValueError(f"a {slot.width}-register point does not fit max_block {max_block}")
            if current is not None:
                new_end = max(current.end, slot.end)
                if slot.address - current.end <= gap and new_end - current.start <= limit:
                    current.count = new_end - current.start
                    current.slots.append(slot)
                    continue
                blocks.append(current)
            current = Block(table, slot.address, slot.width, [slot])
        if current is not None:
            blocks.append(current)
    return blocks


def split_unbridged(block: Block) -> list[Block]:
    """The same points without bridged holes: for a device that refuses to read unmapped registers."""
    return plan_blocks(block.slots, max_block=max(block.count, 1), max_gap=0)
