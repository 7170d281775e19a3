"""Certificate signing for batches, on every core: a process pool that turns claims into COSE envelopes.

ES256 signing is CPU-bound and holds the GIL, so threads cannot spread it; worker processes can. The
pool is started from the ``spawn`` context (never ``fork``: the server process runs threads, and a
forked child inherits their locks in whatever state they were). Each worker receives the key
passphrase once, at start-up, through the pool's initializer (never on a task, never logged), decrypts
a signing key the first time a task names its kid and keeps it for the worker's life. A task is a
sub-chunk of claims; its answer is their envelopes in order.

With one process (``CERTSEAL_BATCH_SIGNING_PROCESSES=1``) no pool is started: claims are signed in
the calling thread with the keyring's already decrypted key.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import crypto
from crypto import CertificateClaims, SigningKey

from ..keyring import Keyring
from ..models import SigningKeyRow

# A sub-chunk of 1,000 claims signs in well under a second; past this the worker is stuck or gone.
TASK_TIMEOUT_SECONDS = 120

_passphrase: bytes = b""
_keys: dict[str, SigningKey] = {}


def _start_worker(passphrase: bytes) -> None:
    global _passphrase
    _passphrase = passphrase


def _sign_in_worker(kid: str, encrypted_pem: str, claims: Sequence[CertificateClaims]) -> list[bytes]:
    key = _keys.get(kid)
    if key is None:
        key = SigningKey.from_pem(encrypted_pem.encode(), _passphrase)
        if key.kid.hex() != kid:
            raise crypto.KeyUnavailable(f"signing key {kid} does not match its kid")
        _keys[kid] = key
    return [crypto.sign_certificate(one, key) for one in claims]


def default_processes(configured: int | None) -> int:
    """``CERTSEAL_BATCH_SIGNING_PROCESSES``, or when unset one per CPU from 3 CPUs on.

    On 2 CPUs signing in the worker's own thread measured faster than the pool (bench/bench_batch.py:
    the database work and the hand-over to the processes compete with the signers for the same two cores).
    """
    cpus = os.cpu_count() or 1
    return configured or (cpus if cpus > 2 else 1)


class SigningPool:
    """Signs claims with an issuer's key, spread over ``processes`` worker processes (started on first use)."""

    def __init__(self, keyring: Keyring, passphrase: bytes, *, processes: int) -> None:
        self.processes = processes
        self._keyring = keyring
        self._passphrase = passphrase
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker,
                    initargs=(self._passphrase,),
                )
            return self._executor

    def sign(self, key_row: SigningKeyRow, claims: Sequence[CertificateClaims]) -> list[bytes]:
        """The envelopes of ``claims`` signed with the active key ``key_row``, in the same order."""
        if self.processes <= 1 or len(claims) < 2 * self.processes:
            key = self._keyring.signing_key(key_row)
            return [crypto.sign_certificate(one, key) for one in claims]
        self._keyring.signing_key(key_row)  # refuses a key that is not active, as the single path does
        size = -(-len(claims) // self.processes)
        pool = self._pool()
        futures = [
            pool.submit(_sign_in_worker, key_row.kid, key_row.encrypted_private_key, claims[start : start + size])
            for start in range(0, len(claims), size)
        ]
        return [envelope for future in futures for envelope in future.result(timeout=TASK_TIMEOUT_SECONDS)]

    def close(self) -> None:
        """Stop the worker processes (running tasks finish first)."""
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)
                self._executor = None
