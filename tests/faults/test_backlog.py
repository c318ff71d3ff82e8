"""Issue 12's scenario through the real cluster: two sites write 100,000 events in
transactions of 250 rows while the third site's bridge is stopped. Before, each site
published every row again whenever its echo had not come back within a minute; the queues
then held ten copies of each event and the two sites did not converge. Now a row is
published again only on evidence that the own queue lost it (bridge/progress.py)."""

from __future__ import annotations

import pytest

from tests import backlog

pytestmark = pytest.mark.faults

EVENTS_PER_SITE = 50_000
# a few percent: a row is published once, and again only if its first publish was not
# confirmed or the own queue lost it; nothing is lost here
AT_MOST = 1.02


def test_a_backlog_converges_with_one_message_per_event(sites, tmp_path):
    result = backlog.run(list(sites.values()), tmp_path, EVENTS_PER_SITE)
    print()
    for line in result.lines():
        print(line)
    sent = sum(result.sent.values())
    assert sent <= result.events * AT_MOST, result.lines()
    assert result.republished == {"PARIS": 0, "MADRID": 0}, result.lines()
    # each queue received every message once (the archive's and the stopped site's too)
    messages = sum(result.messages.values())
    assert 0 < messages <= sent, result.lines()
    assert max(result.peak_depth.values()) <= messages * AT_MOST, result.lines()
