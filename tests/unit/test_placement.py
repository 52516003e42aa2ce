"""Placement's pure parts: Kafka's murmur2 (so pinning a campaign puts it where its key went) and the choice."""

from __future__ import annotations

import pytest

from fcfs.placement import PartitionLoad, choose_partition, key_partition, murmur2


@pytest.mark.parametrize(
    ("key", "expected"),
    [  # the Java client's own test vectors (UtilsTest.testMurmur2)
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_is_kafkas(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


def test_key_partition_is_in_range_and_uses_the_positive_hash() -> None:
    assert key_partition(b"21", 7) == (-973932308 & 0x7FFFFFFF) % 7
    assert all(0 <= key_partition(str(i).encode(), n) < n for i in range(1, 500) for n in (1, 2, 3, 4, 7))


def test_the_least_loaded_partition_is_chosen_then_the_emptiest_then_the_first() -> None:
    loads = [PartitionLoad(0, 2, 5), PartitionLoad(1, 1, 3), PartitionLoad(2, 3, 3), PartitionLoad(3, 1, 9)]
    assert choose_partition(loads) == 1  # weight 3, one campaign
    assert choose_partition([PartitionLoad(0, 1, 1), PartitionLoad(1, 1, 1)]) == 0
    assert choose_partition([PartitionLoad(0, 1, 1), PartitionLoad(1, 0, 0)]) == 1  # a new, empty partition


def test_ten_equal_campaigns_spread_over_four_partitions_three_three_two_two() -> None:
    loads = [PartitionLoad(p, 0, 0) for p in range(4)]
    for _ in range(10):
        p = choose_partition(loads)
        loads[p] = PartitionLoad(p, loads[p].campaigns + 1, loads[p].weight + 1)
    assert sorted(load.campaigns for load in loads) == [2, 2, 3, 3]
