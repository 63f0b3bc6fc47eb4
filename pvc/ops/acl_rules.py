"""The text of a network ACL: one nftables rule (statements only), checked before it is stored.

An ACL is rule text an administrator writes (`tcp dport 22 accept`, `ip saddr 10.0.0.0/8
drop`); each node puts it into its network's `in` or `out` chain of pvc's own table
(pvc.node.firewall). So it may hold only what stays inside one rule of that chain: no second
statement or comment (`;`, `#`, a line break), no braces that close the chain, and no name of
a table or chain (`jump`, `goto`, `table`, `chain` ...): an ACL cannot reach outside its chain.
What passes that is given to `nft -c` inside a scratch table, so a rule nft would refuse is
refused now, with nft's words, and never reaches a node's ruleset.
"""

import re

from pvc import limits
from pvc.drivers import nft
from pvc.errors import InvalidInput

# words that name or reach another chain or table, or change the ruleset itself
FORBIDDEN_WORDS = frozenset(
    {"jump", "goto", "table", "chain", "flowtable", "include", "define", "flush", "delete",
     "add", "insert", "replace", "create", "destroy", "reset", "list"}
)  # fmt: skip
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
CHECK_TABLE = "pvc_acl_check"


def check_acl_rule(rule: str) -> str:
    """The rule, stripped, if it is one nft rule nft accepts; InvalidInput naming the problem."""
    text = rule.strip() if isinstance(rule, str) else ""
    if not text:
        raise InvalidInput("an ACL rule must not be empty (e.g. 'tcp dport 22 accept')")
    if len(text) > limits.ACL_RULE_MAX:
        raise InvalidInput(f"an ACL rule must be at most {limits.ACL_RULE_MAX} characters")
    if not text.isprintable() or any(mark in text for mark in ";#\\"):
        raise InvalidInput("an ACL rule is one nft rule: no ';', '#', '\\' or line breaks")
    depth = 0
    for character in text:
        depth += {"{": 1, "}": -1}.get(character, 0)
        if depth < 0:
            raise InvalidInput("an ACL rule has a '}' without its '{'")
    if depth:
        raise InvalidInput("an ACL rule has a '{' without its '}'")
    words = {word.lower() for word in _WORD.findall(_without_strings(text))}
    named = sorted(words & FORBIDDEN_WORDS)
    if named:
        raise InvalidInput(
            f"an ACL rule may not use '{named[0]}': it stays inside its network's chain"
        )
    nft.check(f"table inet {CHECK_TABLE} {{\n  chain acl {{\n    {text}\n  }}\n}}\n")
    return text


def _without_strings(text: str) -> str:
    """The text without its quoted strings (a log prefix may say "add")."""
    return re.sub(r'"[^"]*"', '""', text)
