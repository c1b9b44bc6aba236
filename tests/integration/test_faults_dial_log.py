"""100,000 dial-log rows through ``qa-service cdr import`` (issue 13, item 4).

The import runs as its own process so that its time and peak RSS (``os.wait4``'s
rusage of that child alone) are its own; both are printed for the closing note. The big
file is GBK with Chinese headers, slash dates and no time zone, the way diallers export
it, with 1,000 rows repeated; small GB18030 and UTF-8-with-BOM files check the other
encodings. Afterwards: each attempt stored once, times without an offset read in the
call centre's zone (``QA_LOCAL_UTC_OFFSET``, as ``cdr import --help`` and the README say),
a second import adds nothing, and the audit chain verifies.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from qa_service.db import make_engine, make_session_factory, migrate
from qa_service.db.tables import DialAttemptRow

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ROWS = 100_000
REPEATED = 1_000
HEADER = "坐席工号,客户号,被叫号码,呼叫时间,是否接通,通话时长\n"
BASE = datetime(2026, 11, 2, 8, 0, 0)


def _row(i: int) -> str:
    at = BASE + timedelta(seconds=37 * i)
    number = f"1{3 + i % 6}{i:09d}"
    return (
        f"A{i % 300:03d},CUST{i:07d},{number},{at:%Y/%m/%d %H:%M:%S},"
        f"{'是' if i % 3 else '否'},{(i % 240) if i % 3 else 0}\n"
    )


def _import(path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float, int]:
    """Run ``qa-service cdr import``; its result, wall seconds and peak RSS in bytes."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa_service.cli", "cdr", "import", str(path)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done, elapsed, usage.ru_maxrss * 1024  # KiB on Linux


def test_100k_dial_log_rows_in_every_encoding(tmp_path: Path, postgres_url: str) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": postgres_url,
        "REDIS_URL": "",
        "QA_DATA_DIR": str(tmp_path / "var"),
        "QA_LOCAL_UTC_OFFSET": "+08:00",
    }
    engine = make_engine(postgres_url)
    migrate(engine)
    sessions = make_session_factory(engine)

    big = tmp_path / "拨号记录-100k.csv"
    lines = [_row(i) for i in range(ROWS)]
    lines += lines[:REPEATED]  # an export that overlaps itself
    big.write_bytes((HEADER + "".join(lines)).encode("gbk"))

    done, seconds, rss = _import(big, env)
    assert done.returncode == 0, done.stderr
    assert f"导入拨号记录 {ROWS} 条新记录（文件共 {ROWS + REPEATED} 条）" in done.stdout
    print(
        f"\ncdr import of {ROWS + REPEATED:,} rows ({big.stat().st_size / 1e6:.1f} MB GBK): "
        f"{seconds:.1f} s, peak RSS {rss / 2**20:.0f} MiB"
    )

    # GB18030 beyond GBK (an extension-B character in a customer id) and UTF-8 with a BOM.
    gb18030 = tmp_path / "gb18030.csv"
    gb18030.write_bytes(
        (HEADER + "B001,客户𠀾01,13800000001,2026-11-03 10:00:00,是,30\n").encode("gb18030")
    )
    bom = tmp_path / "bom.csv"
    bom.write_bytes(
        (
            "\ufeffagent_id,customer_id,dialed_number,started_at,connected,duration_s\n"
            "B002,CUST-BOM,13800000002,2026-11-03T10:00:00+00:00,0,0\n"
            "B002,CUST-BOM,13800000002,2026-11-03T10:00:00+00:00,0,0\n"
        ).encode()
    )
    for path, new in ((gb18030, 1), (bom, 1)):
        small, _, _ = _import(path, env)
        assert small.returncode == 0, small.stderr
        assert f"导入拨号记录 {new} 条新记录" in small.stdout, small.stdout

    again, seconds_again, _ = _import(big, env)
    assert again.returncode == 0, again.stderr
    assert "导入拨号记录 0 条新记录" in again.stdout
    print(f"the same file again: {seconds_again:.1f} s, nothing added")

    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(DialAttemptRow)) == ROWS + 2
        first = session.execute(
            select(DialAttemptRow.started_at, DialAttemptRow.customer_id).where(
                DialAttemptRow.customer_id.in_(["CUST0000000", "客户𠀾01", "CUST-BOM"])
            )
        ).all()
    times = {customer: at.astimezone(UTC) for at, customer in first}
    assert times["CUST0000000"] == datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # 08:00 at +08:00
    assert times["客户𠀾01"] == datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
    assert times["CUST-BOM"] == datetime(2026, 11, 3, 10, 0, tzinfo=UTC)  # its own offset
    engine.dispose()

    verified = subprocess.run(
        [sys.executable, "-m", "qa_service.cli", "audit", "verify"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
