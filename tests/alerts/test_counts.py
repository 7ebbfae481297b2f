"""GET /v1/actions counts, which the consumer of the table's stream keeps (the runner
runs it beside alerts): they converge on the truth within two minutes of the last event,
also for a tenant that sends nothing afterwards."""
import time

from conftest import event

CONVERGED_WITHIN = 120.0


def counts(tenant):
    r = tenant.call("GET", "/v1/actions", tenant.reader)
    assert r.status == 200, r
    return {a["action"]: a["count"] for a in r.body["items"]}


def test_a_burst_is_counted_in_full_after_the_tenant_falls_silent(tenant, other_tenant):
    # Given: 151 events of one action in bursts, and a neighbour's 3, then silence
    burst = [event("doc.edit") for _ in range(151)]
    for start in range(0, 151, 50):
        tenant.post(*burst[start:start + 50])
    tenant.post(event("doc.view"))
    other_tenant.post(*[event("doc.edit") for _ in range(3)])
    # Then: every event is counted, each tenant's on its own
    deadline = time.time() + CONVERGED_WITHIN
    for who, truth in ((tenant, {"doc.edit": 151, "doc.view": 1}), (other_tenant, {"doc.edit": 3})):
        while counts(who) != truth:
            assert time.time() < deadline, counts(who)
            time.sleep(0.5)
    # And: an event sent again (a duplicate, not stored again) adds nothing
    tenant.post(*burst[:5], expect="duplicate")
    time.sleep(2)
    assert counts(tenant) == {"doc.edit": 151, "doc.view": 1}
