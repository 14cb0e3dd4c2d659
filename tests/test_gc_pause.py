import gc
import threading
import weakref

from loader.jobs.gc_pause import gc_paused


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_a_cycle_made_during_the_pause_is_freed_when_it_ends():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        node = _Node()
        gone = weakref.ref(node)
        del node
        assert gone() is not None  # waits for the collector
    assert gc.isenabled()
    assert gone() is None


def test_shards_on_two_threads_restart_the_collector_only_when_both_end():
    first_in, first_may_leave = threading.Event(), threading.Event()
    seen = {}

    def first() -> None:
        with gc_paused():
            first_in.set()
            first_may_leave.wait(10)
            seen["first, other gone"] = gc.isenabled()
        seen["after both"] = gc.isenabled()

    def second() -> None:
        first_in.wait(10)
        with gc_paused():
            seen["both in"] = gc.isenabled()
        seen["second left, first still in"] = gc.isenabled()
        first_may_leave.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == {
        "both in": False,
        "second left, first still in": False,
        "first, other gone": False,
        "after both": True,
    }


def test_a_collector_the_host_turned_off_stays_off():
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
