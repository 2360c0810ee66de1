"""LIST / LSUB (RFC 9051 §6.3.9, RFC 3501 §6.3.8-9, RFC 5258 LIST-EXTENDED, RFC 5819
LIST-STATUS) and the subscription list (RFC 9051 §6.3.7), from the RFC texts and
their examples: the command grammar, which names are listed with which attributes,
and sessions over a real store."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3

import pytest

from mailwright.address import parse_mailbox
from mailwright.auth.logins import Logins
from mailwright.events.log import EventLog
from mailwright.imap.listing import (
    ListCommand,
    list_responses,
    listing,
    name_matcher,
    parse_list,
)
from mailwright.imap.notify import MailboxWatch
from mailwright.imap.parser import ParseError, Reader
from mailwright.imap.session import ImapSession
from mailwright.store.mailboxes import Mailbox
from mailwright.store.sqlite.schema import adopt_legacy_subscriptions

from .conftest import PASSWORD
from .session_harness import TLS, drive, make_config


# --- the grammar (RFC 5258 §6) -----------------------------------------------------------
def parse(args: bytes, lsub: bool = False) -> ListCommand:
    return parse_list(Reader(b" " + args), lsub)


def test_extended_list_syntax():
    cmd = parse(b'(SUBSCRIBED RECURSIVEMATCH) "" ("a/%" b*) RETURN (CHILDREN STATUS '
                b"(MESSAGES unseen))")
    assert cmd.select == {"SUBSCRIBED", "RECURSIVEMATCH"}
    assert cmd.patterns == ("a/%", "b*")
    assert cmd.returns == {"CHILDREN", "STATUS"}
    assert cmd.status_items == ("MESSAGES", "UNSEEN")
    assert parse(b'() "" % RETURN ()').select == frozenset()
    assert parse(b'"" %', lsub=True).criteria == ("SUBSCRIBED",)


@pytest.mark.parametrize("args", [
    b'(RECURSIVEMATCH) "" ""',                 # RFC 5258 §3.1: MUST NOT be alone ...
    b'(RECURSIVEMATCH REMOTE) "" ""',          # ... or only with REMOTE: BAD
    b'(IMAPTEST) "" ""',                       # unknown selection option
    b'"" "" RETURN (IMAPTEST)',                # unknown return option
    b'"" * RETURN (STATUS (FOO))',             # RFC 5819: status-att only
    b'"" * RETURN (STATUS ())',                # at least one status-att
    b'"" * RETURN (CHILDREN  SUBSCRIBED)',     # one SP between options
    b'"" ()',                                  # patterns: at least one
])
def test_malformed_list_commands_are_bad(args):
    with pytest.raises(ParseError):
        parse(args)


def test_lsub_has_no_extended_syntax():
    with pytest.raises(ParseError):
        parse(b'(SUBSCRIBED) "" *', lsub=True)


# --- which names, which attributes --------------------------------------------------------
_ids = itertools.count(1)


def boxes(*names: str, special: dict[str, str] | None = None) -> list[Mailbox]:
    special = special or {}
    return [Mailbox(next(_ids), n, special.get(n), 1, 1, 1, 1) for n in names]


def shown(cmd: ListCommand, mailboxes, subscriptions, utf8: bool = True):
    match = name_matcher(cmd.reference, cmd.patterns, utf8)
    return [(e.name, set(e.attributes), e.childinfo)
            for e in listing(cmd, mailboxes, sorted(subscriptions), match)]


# RFC 5258 §5, example 9: the hierarchy and subscriptions it lists.
EXAMPLE_9 = boxes("foo2", "foo2/bar1", "foo2/bar2", "baz2", "baz2/bar2", "baz2/bar22",
                  "baz2/bar222", "eps2", "eps2/mamba", "qux2/bar2")
EXAMPLE_9_SUBSCRIBED = ["foo2/bar1", "foo2/bar2", "baz2/bar2", "baz2/bar22", "baz2/bar222",
                        "eps2", "eps2/mamba", "qux2/bar2"]


def test_recursivematch_example_9_star_pattern():
    # foo2 and eps2 have a subscribed child "*2" does not match: CHILDINFO. baz2's
    # subscribed children all match "*2" and are listed themselves: baz2 is not.
    cmd = parse(b'(RECURSIVEMATCH SUBSCRIBED) "" "*2"')
    got = {n: (a - {"\\HasChildren", "\\HasNoChildren"}, c)
           for n, a, c in shown(cmd, EXAMPLE_9, EXAMPLE_9_SUBSCRIBED)}
    assert got == {
        "foo2": (set(), ("SUBSCRIBED",)),
        "foo2/bar2": ({"\\Subscribed"}, ()),
        "baz2/bar2": ({"\\Subscribed"}, ()),
        "baz2/bar22": ({"\\Subscribed"}, ()),
        "baz2/bar222": ({"\\Subscribed"}, ()),
        "eps2": ({"\\Subscribed"}, ("SUBSCRIBED",)),
        "qux2/bar2": ({"\\Subscribed"}, ()),
    }


def test_recursivematch_percent_reaches_a_parent_that_does_not_exist():
    # qux2 is no mailbox, but a subscribed name lies below it: RFC 5258 §3.5 table,
    # "no / no / yes" -> (\NonExistent) + CHILDINFO.
    cmd = parse(b'(SUBSCRIBED RECURSIVEMATCH) "" %')
    got = {n: (a, c) for n, a, c in shown(cmd, EXAMPLE_9, EXAMPLE_9_SUBSCRIBED)}
    assert got["qux2"] == ({"\\NonExistent", "\\HasChildren"}, ("SUBSCRIBED",))
    assert got["baz2"] == ({"\\HasChildren"}, ("SUBSCRIBED",))
    assert got["eps2"] == ({"\\HasChildren", "\\Subscribed"}, ("SUBSCRIBED",))
    assert set(got) == {"foo2", "baz2", "eps2", "qux2"}


def test_without_recursivematch_no_childinfo_and_no_unselected_parents():
    cmd = parse(b'(SUBSCRIBED) "" %')
    assert shown(cmd, EXAMPLE_9, EXAMPLE_9_SUBSCRIBED) == [
        ("eps2", {"\\HasChildren", "\\Subscribed"}, ())]


def test_subscribed_name_that_does_not_exist_is_nonexistent_not_noselect():
    # RFC 5258 §3: LIST (SUBSCRIBED) returns subscribed names that do not exist,
    # with \NonExistent (which implies \Noselect).
    cmd = parse(b'(SUBSCRIBED) "" *')
    assert shown(cmd, boxes("INBOX"), ["gone"]) == [("gone", {"\\NonExistent",
                                                              "\\Subscribed"}, ())]


def test_children_attributes_count_existing_mailboxes_only():
    # RFC 5258 §4: \HasChildren is about mailboxes, whatever the selection; a
    # subscribed name that does not exist is no child.
    cmd = parse(b'"" % RETURN (CHILDREN SUBSCRIBED)')
    got = shown(cmd, boxes("a", "a/b", "c"), ["c/ghost", "a"])
    assert got == [("a", {"\\HasChildren", "\\Subscribed"}, ()),
                   ("c", {"\\HasNoChildren"}, ())]


def test_lsub_percent_returns_unsubscribed_parent_as_noselect():
    # RFC 3501 §6.3.9: "foo/bar" subscribed, "foo" not: LSUB "%" returns foo,
    # not foo/bar, flagged \Noselect (whether foo exists or not).
    cmd = parse(b'"" %', lsub=True)
    assert shown(cmd, boxes("foo", "foo/bar"), ["foo/bar"]) == [("foo", {"\\Noselect"}, ())]
    assert shown(cmd, [], ["foo/bar"]) == [("foo", {"\\Noselect"}, ())]
    assert shown(parse(b'"" *', lsub=True), boxes("foo", "foo/bar"), ["foo/bar"]) == \
        [("foo/bar", set(), ())]


def test_lsub_lists_subscriptions_only():
    cmd = parse(b'"" *', lsub=True)
    assert shown(cmd, boxes("INBOX", "Sent", "x"), ["INBOX", "ghost"]) == \
        [("INBOX", set(), ()), ("ghost", set(), ())]


def test_special_use_selection_with_recursivematch():
    # RFC 6154 adds SPECIAL-USE as a base selection option; RECURSIVEMATCH
    # then reports parents of special-use mailboxes no pattern reaches.
    cmd = parse(b'(SPECIAL-USE RECURSIVEMATCH) "" %')
    got = shown(cmd, boxes("Archive", "Archive/2026", "Notes",
                           special={"Archive/2026": "\\Archive"}), [])
    assert got == [("Archive", {"\\HasChildren"}, ("SPECIAL-USE",))]


def test_plain_list_percent_returns_levels_without_a_mailbox():
    # RFC 9051 §6.3.9: levels of hierarchy "%" reaches that are not mailboxes
    # are returned as not selectable (\NonExistent implies \Noselect).
    cmd = parse(b'"" %')
    assert shown(cmd, boxes("a/b"), []) == [("a", {"\\NonExistent", "\\HasChildren"}, ())]
    assert shown(parse(b'"" *'), boxes("a/b"), []) == [("a/b", {"\\HasNoChildren"}, ())]


def test_modified_utf7_patterns_match_names_as_the_client_sees_them():
    names = boxes("Été", "Étés/x", "plain")
    cmd = parse(b'"" &AMk-t&AOk-*')                       # RFC 3501 §5.1.3 form
    assert [n for n, _, _ in shown(cmd, names, [], utf8=False)] == ["Été", "Étés/x"]
    # Not valid modified UTF-7: it can name nothing, so it matches nothing.
    bad = parse(b"\"\" \"!#$&'+,-.0123456789:;<=>?@^_`|[}%*\"")
    assert shown(bad, names, [], utf8=False) == []
    # A UTF-8 client's pattern is UTF-8; "&" is just a character then.
    assert shown(parse('"" "Été"'.encode()), names, [], utf8=True)[0][0] == "Été"
    assert shown(parse(b'"" &AMk-t&AOk-'), names, [], utf8=True) == []




class Listable:
    """The two reads a listing makes of the store (MailboxStore)."""

    def __init__(self, mailboxes: list[Mailbox], subscriptions: list[str]):
        self._boxes, self._subscriptions = mailboxes, subscriptions

    async def mailboxes(self, account_id: int) -> list[Mailbox]:
        return self._boxes

    async def subscriptions(self, account_id: int) -> list[str]:
        return self._subscriptions


def test_responses_without_a_session():
    # The responses come from the command, the store's two reads, the client's name
    # form and a STATUS renderer: no session state is reached into.
    store = Listable(boxes("INBOX", "Caf\u00e9"), ["Gone"])
    asked: list[tuple[str, list[str]]] = []

    async def status_line(box: Mailbox, items: list[str]) -> bytes:
        asked.append((box.name, items))
        return b"* STATUS x\r\n"

    cmd = parse(b'(SUBSCRIBED) "" * RETURN (STATUS (MESSAGES))')
    out = asyncio.run(list_responses(cmd, store, 1, False, status_line))
    # RFC 5819 §2: STATUS only for a name that exists; RFC 3501 §5.1.3: modified UTF-7
    assert out == b'* LIST (\\NonExistent \\Subscribed) "/" "Gone"\r\n'
    assert asked == []
    out = asyncio.run(list_responses(parse(b'"" * RETURN (STATUS (MESSAGES))'), store, 1,
                                     False, status_line))
    assert b'"Caf&AOk-"' in out and asked == [("Caf\u00e9", ["MESSAGES"]), ("INBOX", ["MESSAGES"])]
    # RFC 9051 §6.3.9: an empty pattern asks for the delimiter; no store read needed
    assert asyncio.run(list_responses(parse(b'"" ""'), None, 1, True, status_line)) == \
        b'* LIST (\\Noselect) "/" ""\r\n'

# --- sessions over a real store ----------------------------------------------------------
_users = itertools.count()


@pytest.fixture
def store(make_store):
    """A store of each backend: the listings are the same on both."""
    s = make_store()
    asyncio.run(s.add_domain("example.test"))
    return s


class Client:
    def __init__(self, store):
        self.user = f"lister{next(_users)}@example.test"
        asyncio.run(store.add_account(parse_mailbox(self.user), PASSWORD))
        config = make_config()
        self.s = ImapSession("192.0.2.9", TLS, config, store, Logins.from_settings(config.auth),
                             EventLog(None), MailboxWatch(store))
        self.s.greeting()
        assert self.cmd(f'a LOGIN {self.user} "{PASSWORD}"')[-1].startswith("a OK")

    def cmd(self, line: str) -> list[str]:
        out, _ = drive(self.s, line.encode() + b"\r\n")
        return out.decode().split("\r\n")[:-1]


def test_new_account_mailboxes_start_subscribed(store):
    c = Client(store)
    assert c.cmd('l LSUB "" *')[:-1] == [f'* LSUB () "/" "{n}"' for n in
                                         ("Archive", "Drafts", "INBOX", "Junk", "Sent",
                                          "Trash")]


def test_create_does_not_subscribe_and_subscriptions_outlive_delete(store):
    c = Client(store)
    assert c.cmd("1 CREATE work/2026")[-1] == "1 OK CREATE completed"
    assert c.cmd('2 LSUB "" work*') == ["2 OK LSUB completed"]
    assert c.cmd("3 SUBSCRIBE work/2026")[-1] == "3 OK SUBSCRIBE completed"
    assert c.cmd('4 LSUB "" work/%') == ['* LSUB () "/" "work/2026"', "4 OK LSUB completed"]
    assert c.cmd("5 DELETE work/2026")[-1] == "5 OK DELETE completed"
    # RFC 3501 §6.3.6: the server does not remove the name on its own.
    assert c.cmd('6 LIST (SUBSCRIBED) "" work*') == [
        '* LIST (\\NonExistent \\Subscribed) "/" "work/2026"', "6 OK LIST completed"]


def test_subscribe_to_a_name_that_does_not_exist(store):
    # RFC 9051 §6.3.7: a server MAY check existence; we let clients subscribe first.
    c = Client(store)
    assert c.cmd("1 SUBSCRIBE later/box")[-1] == "1 OK SUBSCRIBE completed"
    assert c.cmd('2 LSUB "" %')[-2:] == ['* LSUB (\\Noselect) "/" "later"',
                                          "2 OK LSUB completed"]
    assert c.cmd("3 UNSUBSCRIBE later/box")[-1] == "3 OK UNSUBSCRIBE completed"
    assert c.cmd("4 UNSUBSCRIBE later/box")[-1] == "4 OK UNSUBSCRIBE completed"
    assert c.cmd('5 SUBSCRIBE "a*b"')[-1].startswith("5 NO [CANNOT]")


def test_rename_leaves_subscriptions_alone(store):
    c = Client(store)
    c.cmd("1 CREATE old")
    c.cmd("2 SUBSCRIBE old")
    assert c.cmd("3 RENAME old new")[-1] == "3 OK RENAME completed"
    assert c.cmd('4 LIST (SUBSCRIBED) "" *')[-2] == \
        '* LIST (\\NonExistent \\Subscribed) "/" "old"'


def test_listext_recursivematch_over_the_store(store):
    c = Client(store)
    for name in ("t/test2/test1", "t/test7/test7", "t/test8/test8", "t/test8/test9"):
        assert c.cmd(f"c CREATE {name}")[-1] == "c OK CREATE completed"
        assert c.cmd(f"s SUBSCRIBE {name}")[-1] == "s OK SUBSCRIBE completed"
    assert c.cmd('1 LIST (SUBSCRIBED RECURSIVEMATCH) "" t/test2% RETURN (CHILDREN)') == [
        '* LIST (\\HasChildren) "/" "t/test2" ("CHILDINFO" ("SUBSCRIBED"))',
        "1 OK LIST completed"]
    assert c.cmd('2 LIST (SUBSCRIBED RECURSIVEMATCH) "" t*test7') == [
        '* LIST (\\HasNoChildren \\Subscribed) "/" "t/test7/test7"', "2 OK LIST completed"]


def test_list_status_items_are_checked_not_crashed_on(store):
    c = Client(store)
    assert c.cmd('1 LIST "" INBOX RETURN (STATUS (BOGUS))')[-1].startswith("1 BAD")
    assert c.cmd('2 LIST "" % RETURN (STATUS (MESSAGES))')[:2] == [
        '* LIST (\\HasNoChildren \\Archive) "/" "Archive"', '* STATUS "Archive" (MESSAGES 0)']
    # RFC 5819 §2: no STATUS for a name that is not a mailbox.
    c.cmd("3 SUBSCRIBE ghost")
    out = c.cmd('4 LIST (SUBSCRIBED) "" ghost RETURN (STATUS (MESSAGES))')
    assert out == ['* LIST (\\NonExistent \\Subscribed) "/" "ghost"', "4 OK LIST completed"]


def test_names_that_are_not_modified_utf7(store):
    # A valid astring, so not BAD; a name no mailbox can have, so NO (RFC 9051 §7.1).
    c = Client(store)
    weird = "!#$&'+,-.0123456789:;<=>?@^_`|[}"
    assert c.cmd(f"1 SELECT {weird}")[-1].startswith("1 NO [CANNOT]")
    assert c.cmd(f"2 CREATE {weird}")[-1].startswith("2 NO [CANNOT]")
    assert c.cmd(f'3 LIST "" {weird}%*') == ["3 OK LIST completed"]
    assert c.cmd('4 LIST "" ~foo') == ["4 OK LIST completed"]
    assert c.cmd("5 SELECT ~foo")[-1].startswith("5 NO")
    assert c.cmd("6 NOOP") == ["6 OK NOOP completed"]
    # The same name is fine once the client speaks UTF-8 (RFC 9051 §6.3.1).
    c.cmd("7 ENABLE UTF8=ACCEPT")
    assert c.cmd(f"8 CREATE {weird}")[-1] == "8 OK CREATE completed"
    assert c.cmd(f'9 LIST "" {weird}')[0].endswith(f'"{weird}"')


def test_lsub_empty_pattern_is_not_a_list_response(store):
    c = Client(store)
    assert c.cmd('1 LSUB "" ""') == ["1 OK LSUB completed"]
    assert c.cmd('2 LIST "" ""') == ['* LIST (\\Noselect) "/" ""', "2 OK LIST completed"]


# --- the subscription list in the store ----------------------------------------------------
def test_subscription_limits_and_names(store):
    account = asyncio.run(store.account_id(Client(store).user))
    with pytest.raises(Exception, match="wildcards"):
        asyncio.run(store.subscribe(account, "x%", True))
    asyncio.run(store.subscribe(account, "inbox/Sub", True))
    assert "INBOX/Sub" in asyncio.run(store.subscriptions(account))


def test_legacy_subscribed_column_is_adopted_once():
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE mailboxes (id INTEGER PRIMARY KEY, account_id INTEGER, name TEXT,"
        " subscribed INTEGER NOT NULL DEFAULT 1);"
        "CREATE TABLE subscriptions (account_id INTEGER, name TEXT,"
        " PRIMARY KEY (account_id, name));"
        "INSERT INTO mailboxes (account_id, name, subscribed) VALUES"
        " (1, 'INBOX', 1), (1, 'Hidden', 0), (2, 'Other', 1);")
    adopt_legacy_subscriptions(conn)
    assert conn.execute("SELECT account_id, name FROM subscriptions ORDER BY 1, 2"
                        ).fetchall() == [(1, "INBOX"), (2, "Other")]
    # Mailboxes created afterwards get the old column's default: not adopted again.
    conn.execute("INSERT INTO mailboxes (account_id, name) VALUES (1, 'New')")
    adopt_legacy_subscriptions(conn)
    assert conn.execute("SELECT count(*) FROM subscriptions").fetchone()[0] == 2
