"""The component's exports, built on the bindings componentize-py generates
(``wit_world``): conversions between the SDK's types and the contract's, at
the edge. Not public API."""

from typing import Any, Optional

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import matcher as wit_matcher
from wit_world.imports import types

from . import Directory, Error, Message, _failure, _host, _server_action, build  # noqa: F401

# The plugin built by `init`. The engine makes a fresh instance per message
# and calls `init` first, so this lives for one message.
_plugin: Any = None
_directory = Directory()
_KINDS = {"contact": types.PartyKind.CONTACT, "lead": types.PartyKind.LEAD}


def lifecycle(plugin_class: type) -> type:
    class Lifecycle(exports.Lifecycle):
        def init(self, config: str) -> None:
            global _plugin
            try:
                _plugin = build(plugin_class, config)
            except Exception as e:  # every failure is the operator's to read
                raise Err(_failure(e)) from None

    return Lifecycle


def _call(role: str, record: Any) -> Any:
    if _plugin is None:
        raise Err("plugin used before init")
    try:
        return getattr(_plugin, role)(Message(record), _directory)
    except Err:
        raise
    except Exception as e:
        raise Err(_failure(e)) from None


def _action(action: Optional[str]) -> Any:
    if action is None:
        return None
    spelled = _server_action(action)
    if spelled == "leave":
        return types.ServerAction_Leave()
    if spelled == "mark-seen":
        return types.ServerAction_MarkSeen()
    if spelled == "delete":
        return types.ServerAction_Delete()
    return types.ServerAction_MoveTo(spelled[5:].strip())


def _ref(ref: Any) -> Any:
    if ref.kind not in _KINDS:
        raise Err(f"party {ref.id!r} has kind {ref.kind!r} (expected contact or lead)")
    return types.PartyRef(_KINDS[ref.kind], ref.id)


def matcher() -> type:
    class Matcher(exports.Matcher):
        def match_message(self, message: Any) -> Any:
            v = _call("match", message)
            if v is None or not hasattr(v, "outcome"):
                raise Err(f"match() returned {type(v).__name__}, not a Verdict")
            if v.outcome == "attach":
                outcome = wit_matcher.Outcome_Attach([_ref(r) for r in v.parties])
            elif v.outcome == "end-chain":
                terminal = {
                    "discard": lambda: wit_matcher.Terminal_Discard(v.reason),
                    "quarantine": lambda: wit_matcher.Terminal_Quarantine(v.reason),
                    "keep-unlinked": wit_matcher.Terminal_KeepUnlinked,
                }[v.terminal]()
                outcome = wit_matcher.Outcome_EndChain(terminal)
            else:
                outcome = wit_matcher.Outcome_NoOpinion()
            try:
                action = _action(v.server_action)
            except Error as e:
                raise Err(str(e)) from None
            return wit_matcher.Verdict(outcome, action)

    return Matcher


def unknown_sender() -> type:
    from wit_world.exports import unknown_sender as wit_policy

    class UnknownSender(exports.UnknownSender):
        def decide(self, message: Any) -> Any:
            v = _call("unknown_sender", message)
            if v is None or not hasattr(v, "decision"):
                raise Err(f"unknown_sender() returned {type(v).__name__}, not a PolicyVerdict")
            if v.decision == "create-lead":
                decision = wit_policy.Decision_CreateLead(
                    wit_policy.NewLead(v.email, v.name, v.company)
                )
            elif v.decision == "quarantine":
                decision = wit_policy.Decision_Quarantine(v.reason)
            elif v.decision == "discard":
                decision = wit_policy.Decision_Discard(v.reason)
            else:
                decision = wit_policy.Decision_KeepUnlinked()
            try:
                action = _action(v.server_action)
            except Error as e:
                raise Err(str(e)) from None
            return wit_policy.PolicyVerdict(decision, action)

    return UnknownSender
