"""Whether the installed torch and torchvision belong together, read from their package metadata (nothing
imported): a pair from different releases or builds (torch 2.13.0+cpu beside torchvision 0.28.0+cu130, say) fails
at the first use of torchvision with "operator torchvision::nms does not exist". `bench` says so in one line
instead, naming the versions to install together.
"""
from __future__ import annotations

import re
from importlib import metadata


def _release(version: str) -> tuple[int, int] | None:
    m = re.match(r"(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _build(version: str) -> str:
    """The local build tag ("cpu", "cu130"; "" where none)."""
    return version.split("+", 1)[1] if "+" in version else ""


def torchvision_for(torch_version: str) -> str | None:
    """The torchvision release made with a torch 2.x release (2.N goes with 0.(N+15): 2.2 with 0.17, 2.14 with
    0.29); None for another torch."""
    release = _release(torch_version)
    if not release or release[0] != 2:
        return None
    return f"0.{release[1] + 15}"


def torch_pair_problem(versions: dict | None = None) -> str | None:
    """One line where torch and torchvision do not belong together (another release, or another build such as
    cpu against cu130), naming the pair to install; None where they do or one is not installed. ``versions``:
    {"torch": ..., "torchvision": ...} instead of the installed ones (tests)."""
    if versions is None:
        try:
            versions = {name: metadata.version(name) for name in ("torch", "torchvision")}
        except metadata.PackageNotFoundError:
            return None
    torch_v, vision_v = versions["torch"], versions["torchvision"]
    wanted = torchvision_for(torch_v)
    release = _release(vision_v)
    other_release = wanted is not None and release is not None and f"{release[0]}.{release[1]}" != wanted
    builds = _build(torch_v), _build(vision_v)
    other_build = all(builds) and builds[0] != builds[1]
    if not (other_release or other_build):
        return None
    plain = torch_v.split("+")[0]
    pair = f"torch=={plain} torchvision=={wanted}.*" if wanted else f"the torchvision release made for torch {plain}"
    index = f" --index-url https://download.pytorch.org/whl/{builds[0]}" if builds[0] else ""
    why = (f"torch {plain} goes with torchvision {wanted}" if other_release else
           f"a {builds[1]} build beside a {builds[0]} one")
    return (f"torchvision {vision_v} does not match torch {torch_v} ({why}) and fails when used; install the two "
            f"together: pip install {pair}{index}")
