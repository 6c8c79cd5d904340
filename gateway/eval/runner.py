"""Running every prompt at every noise level through a backend.

Each (prompt, noise level) is refined (a) with the gate on, to measure its decisions, and (b) with
the gate bypassed, to measure the stages themselves. (b) reuses (a) when the gate already sent the
text to the stages (the same call), and is not run for non-English prompts. Noise levels > 0
cover English prompts with at least one eligible word (others would be the clean text again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass

from gateway.eval.backends import Backend, EvalOutcome
from gateway.eval.noise import Typo, noisy_version
from gateway.eval.prompts import Prompt


@dataclass(frozen=True, slots=True)
class Job:
    """One text to refine: a prompt at a noise level (0 = the clean text)."""

    prompt: Prompt
    rate: float
    text: str
    typos: tuple[Typo, ...]
    bypass: bool  # also measure the stages with the gate bypassed


@dataclass(frozen=True, slots=True)
class Sample:
    """A job's results: ``gated`` with the gate on, ``bypassed`` with it off (None: not run)."""

    prompt: Prompt
    rate: float
    text: str
    typos: tuple[Typo, ...]
    gated: EvalOutcome
    bypassed: EvalOutcome | None


def plan(prompts: Sequence[Prompt], rates: Sequence[float], seed: int, vocabulary: Container[str]) -> list[Job]:
    """The jobs for these prompts and noise levels (level 0 always comes first)."""
    jobs = []
    for prompt in prompts:
        jobs.append(Job(prompt, 0.0, prompt.text, (), bypass=prompt.english))
        if not prompt.english:
            continue
        for rate in rates:
            if rate <= 0:
                continue
            noisy = noisy_version(prompt.text, prompt.id, rate, seed, vocabulary)
            if noisy.typos:
                jobs.append(Job(prompt, rate, noisy.text, noisy.typos, bypass=True))
    return jobs


async def run_job(backend: Backend, job: Job) -> Sample:
    gated = await backend.refine(job.text, use_gate=True)
    bypassed = None
    if job.bypass:
        bypassed = gated if gated.refine else await backend.refine(job.text, use_gate=False)
    return Sample(job.prompt, job.rate, job.text, job.typos, gated, bypassed)


async def run(backend: Backend, jobs: Sequence[Job], progress: Callable[[int, int], None] | None = None) -> list[Sample]:
    """Every job's sample, in job order, at most ``backend.concurrency`` in flight."""
    limit = asyncio.Semaphore(max(1, backend.concurrency))
    done = 0

    async def one(job: Job) -> Sample:
        nonlocal done
        async with limit:
            sample = await run_job(backend, job)
        done += 1
        if progress is not None:
            progress(done, len(jobs))
        return sample

    tasks = [asyncio.ensure_future(one(job)) for job in jobs]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
