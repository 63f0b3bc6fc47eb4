"""The text of a network ACL: one nftables rule (statements only), checked before it is stored.

An ACL is rule text an administrator writes (`tcp dport 22 accept`, `ip saddr 10.0.0.0/8
drop`); each node puts it into its network's `in` or `out` chain of pvc's own table
(pvc.node.firewall). So it may hold only what stays inside one rule of that chain: no second
statement or comment (`;`, `#`, a line break), no braces that close the chain, no name of a
table or chain (`jump`, `goto`, `table`, `chain` ...), no named set or map (`@guests`: an
ACL could otherwise add itself to the set the metadata service trusts) and no `meter` (it
makes a named set in pvc's table: one named like pvc's own, or two ACLs' of one name, fail
the node's whole load): an ACL cannot reach outside its chain. What passes that is given to
`nft -c` in a scratch copy of the node's inet table (pvc.node.firewall_rules: pvc's sets and
chains, the network's other ACLs with the new one in its chain), so a rule nft would refuse
there is refused now, with nft's words. The kernel may still refuse at load what the check
let through (pvc.drivers.nft): the node then fails that network closed.
"""

import re
from collections.abc import Iterable

from pvc import limits
from pvc.drivers import nft
from pvc.errors import InvalidInput
from pvc.node import firewall_rules
from pvc.node.firewall_rules import Records
from pvc.ops.network_records import Acl, Network

# words that name or reach another chain or table, or change the ruleset itself
FORBIDDEN_WORDS = frozenset(
    {"jump", "goto", "table", "chain", "flowtable", "include", "define", "flush", "delete",
     "add", "insert", "replace", "create", "destroy", "reset", "list", "meter"}
)  # fmt: skip
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
CHECK_TABLE = "pvc_acl_check"


def check_acl_rule(rule: str, network: Network, direction: str, acls: Iterable[Acl] = ()) -> str:
    """The rule, stripped, if it is one nft rule nft accepts after the network's `acls` in
    its `direction` chain; InvalidInput naming the problem."""
    text = rule.strip() if isinstance(rule, str) else ""
    problem = rule_problem(text)
    if problem:
        raise InvalidInput(problem)
    fit = [acl for acl in acls if not rule_problem(acl.rule.strip())]  # as a node loads them
    ordered = [*fit, Acl(direction, "(new)", text, 0)]
    records = Records(networks=(network,), acls={network.vni: ordered})
    nft.check(firewall_rules.render_inet(records, CHECK_TABLE))
    return text


def rule_problem(text: str) -> str | None:
    """Why `text` cannot be an ACL, without asking nft (None: nft may judge it). The node's
    firewall asks this too: a rule that reached Zookeeper unchecked never reaches a ruleset."""
    if not text:
        return "an ACL rule must not be empty (e.g. 'tcp dport 22 accept')"
    if len(text) > limits.ACL_RULE_MAX:
        return f"an ACL rule must be at most {limits.ACL_RULE_MAX} characters"
    if not text.isprintable() or any(mark in text for mark in ";#\\"):
        return "an ACL rule is one nft rule: no ';', '#', '\\' or line breaks"
    if text.count('"') % 2:
        return "an ACL rule has a '\"' without its closing '\"'"
    code = _without_strings(text)  # a brace or word inside a quoted string is text
    if any(mark in code for mark in "@$"):
        return "an ACL rule may not name a set, map or variable ('@', '$'): pvc's are not its own"
    depth = 0
    for character in code:
        depth += {"{": 1, "}": -1}.get(character, 0)
        if depth < 0:
            return "an ACL rule has a '}' without its '{'"
    if depth:
        return "an ACL rule has a '{' without its '}'"
    named = sorted({word.lower() for word in _WORD.findall(code)} & FORBIDDEN_WORDS)
    if named:
        return f"an ACL rule may not use '{named[0]}': it stays inside its network's chain"
    return None


def _without_strings(text: str) -> str:
    """The text without its quoted strings (a log prefix may say "add")."""
    return re.sub(r'"[^"]*"', '""', text)
