"""Live audit mode: each decision checked against a candidate policy. Pure.

`lsmtrace trace|tui|export --policy FILE` is `policy check` applied live, one
decision at a time: the Session hands every event to :class:`LiveCheck`, in
order, process events included, before anything is filtered out; a decision
the policy would deny gets ``would_deny`` (docs/events.md):

    {"policy": "cat.landlock.json", "target": "landlock",
     "context": "ruleset lsmtrace", "program": "/usr/bin/cat",
     "access": ["file /tmp/x/c read"],
     "missing": ["{\"path\": \"/tmp/x/c\", \"access\": [\"read_file\"]}"]}

Nothing here has a rule logic of its own. An event becomes accesses through
the model's Builder (policy/model.py: the same mapping as `generate`); an
access is evaluated by the target's own functions (`apparmor.allows`,
`selinux.requirements` + `lacking`, `landlock.requirements` + `lacking`,
`tomoyo.allows`), and the missing rule is what that target's generator would
write for that one access (`apparmor.render_body`, `selinux.allow_rule`,
`landlock.rule_text`, `tomoyo.acls`).

What is new is *which* decisions a policy governs, followed per process
across fork and exec (docs/policy.md, "Live audit mode"):
- AppArmor: a process runs under the profile attached to the program it
  exec'd (its resolved path, the exec'd name, the /usr form), then follows the
  profile's exec rules (ix stays, Cx -> its child profile, Px -> the named or
  attached profile, ux leaves). A process under no profile is unconfined:
  never "would deny".
- TOMOYO: a program of an `initialize_domain ... from any` line starts its
  domain wherever it runs; from a domain, an exec enters the domain named by
  the chain (`<kernel> A B`) when the policy has it. Elsewhere: not governed.
- SELinux: a process whose program is a recorded command enters that
  command's domain (as `runcon -t` or an exec type would), and stays in it
  for everything it runs (the module has no type transitions).
- Landlock: every decision in the traced scope (the ruleset is inherited by
  the sandboxed command's whole tree; scope with --pid/--comm/--cgroup/
  --container/--unit).
A process first seen without its exec (it started before lsmtrace) takes its
parent's context, else the one of its program as the process tree knows it
(the enricher's `exe`), else none.

Memory is bounded: a process is forgotten at its exit, and at most
`max_procs` are kept (the oldest go: exits not seen); a fork is kept apart
until the child's first event (a thread's never comes: at most `max_procs`
of them, first in first out), so thread churn never pushes a live process
out; verdicts are
cached per (context, program, access), at most `max_cache` (then the cache
starts again), as are the paths created under temporary directories
(`max_created`: they decide a temp file's rule for Landlock and SELinux).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from lsmtrace.policy import LoadedPolicy, apparmor, landlock, selinux, tomoyo
from lsmtrace.policy.generalise import TEMP_DIRS, merged_usr
from lsmtrace.policy.model import (
    BPRM_HOOKS,
    EXEC_SYSCALLS,
    OPEN_SYSCALLS,
    Access,
    AccessSet,
    Builder,
    Program,
    classifies_probes,
    exec_program,
    place,
)

Ctx = Any  # a target's context: a profile name, a domain, a TOMOYO chain
GOVERNED = "*"  # Landlock: every decision of the traced scope
EXECVE = frozenset({"sys_execve", "sys_execveat"})
_MISSING = object()


class Target(Protocol):
    """What LiveCheck needs from a target: contexts and one access's rules."""

    outside: Ctx  # the context of a process nothing confines

    def enter(self, ctx: Ctx, names: list[str]) -> Ctx: ...
    def missing(self, ctx: Ctx, prog: Program, created: Iterable[str]) -> list[str]: ...
    def context_name(self, ctx: Ctx) -> str: ...


class LandlockTarget:
    outside: Ctx = GOVERNED

    def __init__(self, policy: LoadedPolicy) -> None:
        self.rules = landlock.ruleset(policy.parsed)
        self.name = str(policy.parsed.get("name") or "lsmtrace")

    def enter(self, ctx: Ctx, names: list[str]) -> Ctx:
        return GOVERNED

    def missing(self, ctx: Ctx, prog: Program, created: Iterable[str]) -> list[str]:
        out = []
        for req in landlock.requirements(
            AccessSet(programs={prog.name: prog}), created
        ):
            lack, _used = landlock.lacking(self.rules, req)
            if lack:
                out.append(landlock.rule_text(req.path, lack))
        return out

    def context_name(self, ctx: Ctx) -> str:
        return f"ruleset {self.name}"


class AppArmorTarget:
    outside: Ctx = None

    def __init__(self, policy: LoadedPolicy) -> None:
        self.profiles: list[apparmor.ParsedProfile] = policy.parsed
        self.by_name = {p.name: p for p in self.profiles}

    def enter(self, ctx: Ctx, names: list[str]) -> Ctx:
        if ctx is None:
            prof = apparmor.attached(self.profiles, names)
        else:
            nxt = apparmor.exec_transition(self.profiles, self.by_name[ctx], names)
            prof = nxt if isinstance(nxt, apparmor.ParsedProfile) else None
        return prof.name if prof is not None else None

    def missing(self, ctx: Ctx, prog: Program, created: Iterable[str]) -> list[str]:
        (a,) = prog.accesses()
        if apparmor.allows(self.by_name[ctx], a.kind, a.what, a.access)[0]:
            return []
        body = apparmor.render_body(prog, frozenset())
        rules = [ln.strip() for ln in body.lines if not ln.lstrip().startswith("#")]
        return rules or [f"# {a.kind} {a.what} {a.access}"]

    def context_name(self, ctx: Ctx) -> str:
        return f"profile {ctx}"


class TomoyoTarget:
    outside: Ctx = None

    def __init__(self, policy: LoadedPolicy) -> None:
        self.domains = {tomoyo.chain_of(d): d for d in policy.parsed}
        self.roots, self.aggregators = tomoyo.exception_policy(policy.text)

    def _names(self, names: list[str]) -> list[str]:
        """The names TOMOYO may give the program: the /usr form is the
        resolved one, and an aggregator maps it to the recorded one."""
        out: list[str] = []
        for n in names:
            for form in (merged_usr(n), n):
                if form:
                    name = self.aggregators.get(form, form)
                    if name not in out:
                        out.append(name)
        return out

    def enter(self, ctx: Ctx, names: list[str]) -> Ctx:
        cands = self._names(names)
        for c in cands:
            if c in self.roots:
                return (c,)
        if ctx is None:
            return None
        for c in cands:
            # a program re-exec'ing itself stays in its domain (as generated)
            chain = ctx if ctx[-1] == c else (*ctx, c)
            if chain in self.domains:
                return chain
        return None

    def missing(self, ctx: Ctx, prog: Program, created: Iterable[str]) -> list[str]:
        (a,) = prog.accesses()
        net = next(iter(prog.network), None)
        if tomoyo.allows(self.domains[ctx], prog, a, net, set())[0]:
            return []
        lines, _notes = tomoyo.acls(prog, set())
        return lines or [f"# {a.kind} {a.what} {a.access}"]

    def context_name(self, ctx: Ctx) -> str:
        return str(self.domains[ctx].name)


class SelinuxTarget:
    outside: Ctx = None

    def __init__(self, policy: LoadedPolicy, labels: dict[str, str]) -> None:
        self.rules: dict[selinux.Key, set[str]] = policy.parsed
        self.defined = {src for (src, _t, _c) in self.rules}
        self.labels = labels  # path -> type, from the AVCs the session saw

    def enter(self, ctx: Ctx, names: list[str]) -> Ctx:
        if ctx is not None:
            return ctx  # no type transitions: what it runs stays in the domain
        for n in names:
            dom = selinux.command_domain(n, self.defined)
            if dom is not None:
                return dom
        return None

    def missing(self, ctx: Ctx, prog: Program, created: Iterable[str]) -> list[str]:
        aset = AccessSet(programs={prog.name: prog}, labels=self.labels)
        out = []
        for _a, needs in selinux.requirements(aset, {prog.name: [ctx]}, created):
            out += [
                selinux.allow_rule(k, p) for k, p in selinux.lacking(self.rules, needs)
            ]
        return out

    def context_name(self, ctx: Ctx) -> str:
        return f"domain {ctx}"


@dataclass
class LiveStats:
    checked: int = 0  # decisions evaluated in a governed context
    would_deny: int = 0  # of those, marked
    ungoverned: int = 0  # decisions of processes the policy does not confine
    memo_hits: int = 0  # decisions answered from the memo (no Builder)
    cache_hits: int = 0  # accesses whose verdict was cached
    cache_misses: int = 0
    processes: int = 0  # processes followed now

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


_NOTHING = object()  # memo: the decision needs nothing (no access)
_KEEP = object()  # memo: the decision leaves the file opened last as it was


def _memoable(ev: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
    """Whether a decision's accesses follow from the event (given the
    process's program; see _memo_extra): not an exec's bprm hook nor any
    other decision inside an execve (the kernel's opens and maps for the new
    program, kept for it until the exec), no joined audit record (it labels
    files), not an mmap of an fd (it maps the file opened last)."""
    if "audit" in ev or ev["hook"] in BPRM_HOOKS or ev.get("syscall") in EXEC_SYSCALLS:
        return False
    return "path" in obj or "fd" not in obj


class LiveCheck:
    """Marks the decisions the loaded policy would deny (see module doc).

    ``add(event)`` for every event in stream order; it sets ``would_deny`` on
    a decision event that needs a rule the policy lacks. Not thread-safe."""

    def __init__(
        self,
        policy: LoadedPolicy,
        *,
        max_procs: int = 65536,
        max_cache: int = 65536,
        max_created: int = 4096,
    ) -> None:
        self.policy = policy
        self.builder = Builder(include_denied=True)
        self.scratch = self.builder.access_set
        target: Target
        if policy.target == "landlock":
            target = LandlockTarget(policy)
        elif policy.target == "apparmor":
            target = AppArmorTarget(policy)
        elif policy.target == "tomoyo":
            target = TomoyoTarget(policy)
        else:
            target = SelinuxTarget(policy, self.scratch.labels)
        self.target = target
        self.max_procs = max_procs
        self.max_cache = max_cache
        self.max_created = max_created
        self.ctx: dict[int, Ctx] = {}  # processes seen, until their exit
        self.forked: dict[int, tuple[Ctx, str | None]] = {}  # forks not seen since
        self.cache: dict[tuple[Any, ...], tuple[str, ...]] = {}
        # decision memo: (context, program, event facts, object) -> its outcome
        self.memo: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}
        self.created: dict[str, None] = {}  # insertion-ordered, bounded
        self.created_version = 0
        self.pending_exec: dict[int, dict[str, Any]] = {}
        self.stats = LiveStats()

    # -- processes -------------------------------------------------------------

    def _context(self, ev: Mapping[str, Any], tgid: int) -> Ctx:
        ctx = self.ctx.get(tgid, _MISSING)
        if ctx is not _MISSING:
            return ctx
        forked = self.forked.pop(tgid, None)
        if forked is not None:
            # its first event: it runs what its parent ran when it forked
            ctx, exe = forked
            if not self.builder.known(tgid):
                self.builder.start(tgid, exe, forked=True)
            self._set(tgid, ctx)
            return ctx
        ctx = self.ctx.get(int(ev.get("ppid") or 0), _MISSING)
        if ctx is _MISSING:
            exe = ev.get("exe")
            if isinstance(exe, str) and exe and ev.get("kind") != "exec":
                # started before lsmtrace: its program as the process tree knows it
                if not self.builder.known(tgid):
                    self.builder.start(tgid, exe)
                ctx = self.target.enter(self.target.outside, [exe])
            else:
                ctx = self.target.outside
        self._set(tgid, ctx)
        return ctx

    def _set(self, tgid: int, ctx: Ctx) -> None:
        self.ctx[tgid] = ctx
        if len(self.ctx) > self.max_procs:
            keep = self.max_procs * 3 // 4
            for old in list(self.ctx)[: len(self.ctx) - keep]:
                del self.ctx[old]
                self.pending_exec.pop(old, None)
            self.builder.trim(keep)

    # -- events ----------------------------------------------------------------

    def add(self, ev: dict[str, Any]) -> None:
        kind = ev["kind"]
        tgid = ev["tgid"]
        # capability checks are told apart as in a recording of this tracer:
        # once it shows it marks quiet probes and path kinds
        if not self.builder.classified and classifies_probes((ev,)):
            self.builder.classified = True
            self.memo.clear()  # capability checks now read differently
        if kind == "fork":
            ctx = self._context(ev, tgid)
            child = (ev.get("object") or {}).get("child_pid")
            if isinstance(child, int) and child:
                # kept apart until the child's first event: a thread's fork
                # never has one (its events carry the process's tgid), so
                # threads only ever fill this bounded, first-in-first-out map
                self.forked[child] = (ctx, self.builder.program_of(tgid))
                if len(self.forked) > self.max_procs:
                    del self.forked[next(iter(self.forked))]
            return
        if kind == "exit":
            self.builder.forget(tgid)
            self.ctx.pop(tgid, None)
            self.forked.pop(tgid, None)
            self.pending_exec.pop(tgid, None)
            return
        if kind == "avc":
            self.builder.add(ev)
            return
        old = self._context(ev, tgid)
        if kind == "exec":
            self._exec(ev, tgid, old)
            return
        pending = self.pending_exec.pop(tgid, None) if self.pending_exec else None
        if pending is not None and ev["hook"] in EXECVE:
            ev["would_deny"] = pending  # the execve that exec event belongs to
            return
        b = self.builder
        obj = ev.get("object")
        key = None
        if type(obj) is dict and _memoable(ev, obj) and b.settled(tgid, ev["pid"]):
            if ev["verdict"] == "error":
                return  # no decision (ENOENT...), and nothing pending it would consume
            # what the Builder makes of this decision depends on these only
            # (the decoder shares one object dict between repeated accesses)
            key = (
                old,
                b.program_of(tgid),
                ev["comm"],
                kind,
                ev["hook"],
                ev["verdict"],
                ev.get("syscall"),
                ev.get("rung"),
                ev.get("noaudit"),
                id(obj),
                self._memo_extra(ev, obj),
            )
            hit = self.memo.get(key)
            if hit is not None and hit[0] is obj:
                self._replay(ev, tgid, old, hit)
                return
        s = self.scratch
        b.add(ev)
        mark: dict[str, Any] | object | None = _NOTHING
        if s.programs:
            progs = list(s.programs.values())
            self._clear()
            if old is None:  # no profile, domain...: the policy does not confine it
                self.stats.ungoverned += 1
                mark = None
            else:
                mark = self._mark(ev, [(old, p) for p in progs])
        if key is not None:
            opened = b.last_open(tgid) if ev["hook"] in OPEN_SYSCALLS else _KEEP
            if len(self.memo) >= self.max_cache:
                self.memo.clear()
            self.memo[key] = (obj, opened, mark)

    def _memo_extra(self, ev: Mapping[str, Any], obj: Mapping[str, Any]) -> Any:
        """What else a decision's outcome depends on: the process itself for
        /proc/<pid> paths and target processes (its own or another's), what
        the session created so far for paths under temp directories."""
        if "target_pid" in obj:
            return (ev["tgid"], ev["pid"])
        path, path2 = obj.get("path"), obj.get("path2")
        for p in (path, path2):
            if type(p) is str:
                if p.startswith("/proc/"):
                    return (ev["tgid"], ev["pid"])
                if p.startswith(TEMP_DIRS):
                    return self.created_version
        return None

    def _replay(
        self, ev: dict[str, Any], tgid: int, ctx: Ctx, hit: tuple[Any, Any, Any]
    ) -> None:
        """A decision seen before in this context: its verdict again, and the
        one effect it had on the Builder (an open: the file opened last)."""
        _obj, opened, mark = hit
        st = self.stats
        st.memo_hits += 1
        if opened is not _KEEP:
            self.builder.set_last_open(tgid, opened)
        if mark is _NOTHING:
            return
        if ctx is None:
            st.ungoverned += 1
            return
        st.checked += 1
        if mark is not None:
            st.would_deny += 1
            ev["would_deny"] = mark

    def _exec(self, ev: dict[str, Any], tgid: int, old: Ctx) -> None:
        obj = ev.get("object") or {}
        prog = exec_program(obj)[0]
        names: list[str] = []
        for raw, kind in (
            (prog, None),  # a script, not its interpreter
            (obj.get("path"), obj.get("path_kind")),
            (ev.get("exe"), "exact"),
            (obj.get("filename"), None),
        ):
            if isinstance(raw, str) and (kind == "exact" or raw.startswith("/")):
                placed = place(raw, kind)[0]
                if placed and placed not in names:
                    names.append(placed)
        new = self.target.enter(old, names) if names else self.target.outside
        self._set(tgid, new)
        s = self.scratch
        self.builder.add(ev)
        progs = list(s.programs.values())
        self._clear()
        exe = place(str(prog or ""))[0]
        # the caller needed the exec in its context; the new program (its
        # interpreter, a command's own exec) needs the rest in the new one
        work = [(new if p.name == exe else old, p) for p in progs]
        work = [(c, p) for c, p in work if c is not None]
        if work:
            mark = self._mark(ev, work)
            if mark is not None:
                self.pending_exec[tgid] = mark
        elif progs:
            self.stats.ungoverned += 1

    def _clear(self) -> None:
        s = self.scratch
        s.programs.clear()
        if s.unplaced:
            s.unplaced.clear()
        if s.roots:
            s.roots.clear()
            s.chains.clear()
        if s.quiet_caps:
            s.quiet_caps.clear()
        if len(s.labels) > self.max_created:
            s.labels.clear()

    def _mark(
        self, ev: dict[str, Any], work: list[tuple[Ctx, Program]]
    ) -> dict[str, Any] | None:
        st = self.stats
        st.checked += 1
        missing: list[str] = []
        accesses: list[str] = []
        where: list[str] = []
        for ctx, prog in work:
            for a in prog.accesses():
                lack = self._missing(ctx, prog, a)
                if lack:
                    accesses.append(f"{a.kind} {a.what} {a.access}")
                    missing += [m for m in lack if m not in missing]
                    name = self.target.context_name(ctx)
                    if name not in where:
                        where.append(name)
                if (
                    a.kind == "file"
                    and a.what.startswith(TEMP_DIRS)
                    and a.access in (selinux.CREATES)
                ):
                    self._created(a.what)
        if not missing:
            return None
        st.would_deny += 1
        mark = {
            "policy": self.policy.name,
            "target": self.policy.target,
            "context": "; ".join(where),
            "program": work[0][1].name,
            "access": accesses,
            "missing": missing,
        }
        ev["would_deny"] = mark
        return mark

    def _missing(self, ctx: Ctx, prog: Program, a: Access) -> tuple[str, ...]:
        temp = a.kind == "file" and a.what.startswith(TEMP_DIRS)
        key = (ctx, a, a.what in prog.own_proc, self.created_version if temp else None)
        hit = self.cache.get(key)
        if hit is not None:
            self.stats.cache_hits += 1
            return hit
        self.stats.cache_misses += 1
        lack = tuple(self.target.missing(ctx, prog.only(a), self.created))
        if len(self.cache) >= self.max_cache:
            self.cache.clear()
        self.cache[key] = lack
        return lack

    def _created(self, path: str) -> None:
        if path in self.created:
            return
        self.created[path] = None
        self.created_version += 1  # a temp path's verdict may differ from now on
        if len(self.created) > self.max_created:
            del self.created[next(iter(self.created))]

    def summary(self) -> dict[str, int]:
        self.stats.processes = len(self.ctx)
        return self.stats.as_dict()


def summary_text(policy: str, target: str, stats: Mapping[str, int]) -> str:
    """The live audit mode's line at exit."""
    return (
        f"policy {policy} ({target}): {stats['checked']} decisions checked, "
        f"{stats['would_deny']} would be denied; {stats['ungoverned']} decisions of "
        "processes it does not confine"
    )
