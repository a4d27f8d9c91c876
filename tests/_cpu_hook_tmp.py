import os, resource, time, json
import pytest
_OUT = os.environ.get("CPU_LOG", "/tmp/cpu_log.jsonl")
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    s = resource.getrusage(resource.RUSAGE_SELF); c = resource.getrusage(resource.RUSAGE_CHILDREN); t = time.perf_counter()
    yield
    s2 = resource.getrusage(resource.RUSAGE_SELF); c2 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(_OUT, "a") as f:
        f.write(json.dumps({"id": item.nodeid, "wall": time.perf_counter() - t,
            "self": (s2.ru_utime + s2.ru_stime) - (s.ru_utime + s.ru_stime),
            "children": (c2.ru_utime + c2.ru_stime) - (c.ru_utime + c.ru_stime)}) + "\n")
