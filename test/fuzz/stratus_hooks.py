"""Schemathesis hooks for scripts/fuzz-contract.sh (loaded through SCHEMATHESIS_HOOKS).

Idempotency-Key: the fuzzer draws header values from a small space ("0", "00", …), so unrelated
requests share a key, and Stratus rightly answers 422 (key reused for another request) or replays the
first answer (whose resource may be gone by now). Both are the contract, tested in
test/integration/idempotency.test.ts; here each request gets a key of its own so the other checks
judge the operation itself.
"""
import uuid

import schemathesis


@schemathesis.hook
def map_headers(context, headers):
    if headers and "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = f"{headers['Idempotency-Key']}-{uuid.uuid4()}"
    return headers
