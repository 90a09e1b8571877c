"""Which models a router artifact was trained for, checked against the models a server deploys.

A router's p is P(this local model's answer is not good enough) for the candidates whose outcomes
labelled it; served in front of other models it is a stand-in at best. `router.json` names its
candidates (``info["candidates"]``: role, model, where the labels came from); serving checks each
role's trained model against the deployed one and refuses a mismatch unless the config declares
the stand-in (``serve.router.stand_ins``: trained model -> deployed model), which every response
then says. Written for K candidates: a local/cloud pair is K = 2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from localroute.core.accounting import same_model
from localroute.errors import ConfigError


def candidates_of(info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The artifact's candidates (role, model, labels); artifacts written before they were
    recorded give theirs from info["local"] / info["cloud"]."""
    if info.get("candidates"):
        return [dict(c) for c in info["candidates"]]
    return [
        {"role": role, "model": info[role], "labels": "published"}
        for role in ("local", "cloud")
        if info.get(role)
    ]


@dataclass(frozen=True)
class Pairing:
    """Per role, the model the router was trained for and the one deployed in its place."""

    trained: dict[str, str]
    serving: dict[str, str]
    stand_in: bool

    def line(self) -> str:
        roles = list(self.trained)
        trained = " vs ".join(self.trained[r] for r in roles)
        serving = " vs ".join(self.serving[r] for r in roles)
        if not self.stand_in:
            return f"router trained for the models it serves: {serving}"
        return f"router trained for {trained}, serving {serving} (declared stand-in)"

    def to_dict(self) -> dict[str, Any]:
        return {"trained_for": self.trained, "serving": self.serving, "stand_in": self.stand_in}


def check_pairing(
    info: Mapping[str, Any],
    deployed: Mapping[str, Sequence[str]],
    stand_ins: Mapping[str, str] | None = None,
    where: str = "serve.router",
) -> Pairing:
    """The pairing of a trained artifact (its router.info) with the deployed models.

    ``deployed``: role -> the names the deployed model goes by (its first name is shown).
    A role matches when a name denotes the trained model, or when ``stand_ins`` maps the trained
    model to one of them. Anything else is one ConfigError naming both sides."""
    stand_ins = dict(stand_ins or {})
    trained, serving, declared, wrong = {}, {}, False, []
    for c in candidates_of(info):
        role, model = c["role"], str(c["model"])
        names = [n for n in deployed.get(role, []) if n]
        if not names:
            continue
        trained[role], serving[role] = model, names[0]
        if any(same_model(model, n) for n in names):
            continue
        mapped = next((v for k, v in stand_ins.items() if same_model(k, model)), None)
        if mapped is not None and any(same_model(mapped, n) for n in names):
            declared = True
            continue
        wrong.append(role)
    if wrong:
        t = ", ".join(f"{trained[r]} ({r})" for r in trained)
        s = ", ".join(f"{serving[r]} ({r})" for r in serving)
        example = ", ".join(f"{trained[r]}: {serving[r]}" for r in wrong)
        raise ConfigError(
            f"{where}: the router artifact was trained for {t}, but this server deploys {s}; "
            f"train a router for the deployed models (localroute train --data profile:DIR), or "
            f"declare the stand-in explicitly: {where}.stand_ins: {{{example}}}"
        )
    return Pairing(trained, serving, declared)
