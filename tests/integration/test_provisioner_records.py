"""Userdata, install scripts and profiles (pvc.ops.provisioner_records) on a real Zookeeper,
as ops verbs and over real HTTP (dist/pvc api serve): every verb, and each refusal with its
reason and nothing changed under /provisioner."""

import urllib.parse

import pytest

from pvc.errors import ConcurrentChange, Conflict, InvalidInput, NotFound
from pvc.ops import cluster, provisioner_store
from pvc.ops import provisioner_records as records
from tests.integration.test_api import call
from tests.integration.test_vm_ops import snapshot

HELLO = "#!/bin/sh\necho hello from {{ vm_name }}\n"
CONFIG = "#cloud-config\nhostname: {{ hostname }}\n"
SCRIPT = "class VMBuilderScript(VMBuilder):\n    pass\n"
SMALL = {"vcpus": 1, "memory": 256, "serial": True, "vnc": False, "vnc_bind": None,
         "node_limit": [], "node_selector": None, "node_autostart": False,
         "migration_method": "live"}  # fmt: skip
TEXTS = {"userdata": HELLO, "script": SCRIPT}


def tree(zk) -> dict:
    return snapshot(zk, ("/provisioner",))


@pytest.fixture
def store(zk):
    """An initialised cluster with a system template 'small', a network template 'lan' and
    an OVA record 'appliance' (other parts' records, written through the shared store)."""
    cluster.initialize(zk)
    provisioner_store.add(zk, "system", "small", SMALL)
    provisioner_store.add(zk, "network", "lan", {"mac_template": None, "networks": [100]})
    ova = {"pool": "vms", "volumes": [], "vcpus": 1, "memory": 256, "nics": 1, "ovf": {}}
    provisioner_store.add(zk, "ova", "appliance", ova)
    return zk


def refused(zk, error, verb, *args) -> str:
    """The message of a verb refused with `error`, which changed nothing under /provisioner."""
    before = tree(zk)
    with pytest.raises(error) as caught:
        verb(zk, *args)
    assert tree(zk) == before
    return caught.value.message


@pytest.mark.parametrize("kind", ["userdata", "script"])
def test_texts_are_added_described_modified_and_removed(store, kind):
    text = TEXTS[kind]
    assert records.add_text(store, kind, "one", text)["message"] == f"{kind} 'one' added"
    info = records.text_info(store, kind, "one")
    expected_format = "script" if kind == "userdata" else "python"
    assert info == {"name": "one", "text": text, "format": expected_format,
                    "bytes": len(text), "profiles": []}  # fmt: skip
    records.add_text(store, kind, "two", text)
    assert [r["name"] for r in records.list_texts(store, kind)] == ["one", "two"]
    assert [r["name"] for r in records.list_texts(store, kind, "tw")] == ["two"]
    changed = text + "# changed\n"
    assert records.modify_text(store, kind, "one", changed)["message"] == f"{kind} 'one' modified"
    assert provisioner_store.read(store, kind, "one") == {"name": "one", "text": changed}
    assert records.remove(store, kind, "one")["message"] == f"{kind} 'one' removed"
    assert provisioner_store.names(store, kind) == ["two"]


@pytest.mark.parametrize("kind", ["userdata", "script"])
def test_text_refusals_change_nothing(store, kind):
    records.add_text(store, kind, "one", TEXTS[kind])
    records.add_profile(store, "web", {"system_template": "small", kind: "one"})
    assert refused(store, Conflict, records.add_text, kind, "one", TEXTS[kind]) == (
        f"{kind} 'one' already exists"
    )
    assert "is not cloud-init userdata" in refused(
        store, InvalidInput, records.add_text, "userdata", "bad", "hello"
    )
    assert "does not define class VMBuilderScript" in refused(
        store, InvalidInput, records.add_text, "script", "bad", "x = 1\n"
    )
    assert f"invalid {kind} name 'a/b'" in refused(
        store, InvalidInput, records.add_text, kind, "a/b", TEXTS[kind]
    )
    assert refused(store, InvalidInput, records.modify_text, kind, "one", "") == (
        f"{kind} 'one' is empty"
    )
    assert refused(store, NotFound, records.modify_text, kind, "nope", TEXTS[kind]) == (
        f"{kind} 'nope' does not exist"
    )
    assert refused(store, NotFound, records.remove, kind, "nope") == (
        f"{kind} 'nope' does not exist"
    )
    assert refused(store, Conflict, records.remove, kind, "one") == (
        f"{kind} 'one' is used by profile web"
    )
    assert records.text_info(store, kind, "one")["profiles"] == ["web"]
    assert records.list_texts(store, kind)[0]["profiles"] == ["web"]


def test_profiles_are_added_modified_and_removed(store):
    records.add_text(store, "userdata", "hello", HELLO)
    records.add_text(store, "script", "noop", SCRIPT)
    fields = {"system_template": "small", "network_template": "lan", "userdata": "hello",
              "script": "noop", "arguments": ["image=debian", "size=10G"]}  # fmt: skip
    assert records.add_profile(store, "web", fields)["message"] == "profile 'web' added"
    assert provisioner_store.read(store, "profile", "web") == {
        "name": "web", "type": "provisioner", "system_template": "small",
        "network_template": "lan", "storage_template": None, "userdata": "hello",
        "script": "noop", "ova": None, "arguments": {"image": "debian", "size": "10G"},
    }  # fmt: skip
    changes = {"userdata": "", "arguments": ["image=alpine"]}
    assert records.modify_profile(store, "web", changes)["message"] == "profile 'web' modified"
    profile = provisioner_store.read(store, "profile", "web")
    assert (profile["userdata"], profile["arguments"]) == (None, {"image": "alpine"})
    assert profile["script"] == "noop" and profile["network_template"] == "lan"
    records.remove(store, "userdata", "hello")  # no profile uses it now
    records.add_profile(store, "app", {"type": "ova", "ova": "appliance"})
    assert records.counts(store) == {"system": 1, "network": 1, "storage": 0, "userdata": 0,
                                     "script": 1, "ova": 1, "profile": 2}  # fmt: skip
    assert refused(store, Conflict, provisioner_store.remove, "ova", "appliance") == (
        "OVA 'appliance' is used by profile app"
    )
    assert records.remove(store, "profile", "web")["message"] == "profile 'web' removed"
    assert [p["name"] for p in provisioner_store.list_records(store, "profile")] == ["app"]


@pytest.mark.parametrize(
    "fields, error, reason",
    [
        ({}, InvalidInput, "profile 'p' needs a system template (type provisioner)"),
        ({"system_template": "big"}, NotFound, "system template 'big' does not exist"),
        ({"system_template": "small", "userdata": "nope"}, NotFound,
         "userdata 'nope' does not exist"),
        ({"system_template": "small", "storage_template": "disks"}, NotFound,
         "storage template 'disks' does not exist"),
        ({"system_template": "small", "script": "a b"}, InvalidInput, "invalid script name 'a b'"),
        ({"system_template": "small", "ova": "appliance"}, InvalidInput,
         "profile 'p' names an OVA: only a profile of type ova can"),
        ({"type": "ova"}, InvalidInput, "profile 'p' needs an OVA (type ova)"),
        ({"type": "ova", "ova": "other"}, NotFound, "OVA 'other' does not exist"),
        ({"type": "vm", "system_template": "small"}, InvalidInput, "invalid profile type 'vm'"),
        ({"system_template": "small", "arguments": ["x"]}, InvalidInput,
         "invalid script argument 'x': give key=value"),
    ],
)  # fmt: skip
def test_profile_refusals_change_nothing(store, fields, error, reason):
    assert refused(store, error, records.add_profile, "p", fields).startswith(reason)


def test_profile_modify_refusals_change_nothing(store):
    records.add_profile(store, "web", {"system_template": "small"})
    assert refused(store, Conflict, records.add_profile, "web", {"system_template": "small"}) == (
        "profile 'web' already exists"
    )
    assert refused(store, InvalidInput, records.modify_profile, "web", {}).startswith(
        "nothing to change"
    )
    assert refused(store, InvalidInput, records.modify_profile, "web", {"system_template": ""}) == (
        "profile 'web' needs a system template (type provisioner)"
    )
    assert refused(store, NotFound, records.modify_profile, "web", {"network_template": "x"}) == (
        "network template 'x' does not exist"
    )
    assert refused(store, NotFound, records.modify_profile, "nope", {"type": "ova"}) == (
        "profile 'nope' does not exist"
    )


def test_a_removal_that_checked_before_the_profile_was_stored_fails(store):
    """A profile's transaction rewrites the records it names, so a removal that found no
    profile using a record, and then deletes it guarded by the version it read, fails."""
    records.add_text(store, "userdata", "hello", HELLO)
    key = provisioner_store.key("userdata", "hello")
    _, version = store.read_versioned(key)
    assert provisioner_store.users(store, "userdata", "hello") == []
    records.add_profile(store, "web", {"system_template": "small", "userdata": "hello"})
    with pytest.raises(ConcurrentChange):
        store.write({}, expect={key: version}, delete=[key])
    assert provisioner_store.read(store, "userdata", "hello")["text"] == HELLO


def test_a_profile_naming_the_largest_texts_is_stored(store):
    """TEXT_MAX keeps a profile's transaction (itself, and the userdata and script it names,
    rewritten) within what Zookeeper takes."""
    filler = records.TEXT_MAX - 200  # the JSON around the text takes the rest
    records.add_text(store, "userdata", "big", HELLO + "#" * (filler - len(HELLO)) + "\n")
    records.add_text(store, "script", "big", SCRIPT + "#" * (filler - len(SCRIPT)) + "\n")
    records.add_profile(store, "web", {"system_template": "small", "userdata": "big",
                                       "script": "big"})  # fmt: skip
    records.modify_profile(store, "web", {"arguments": ["a=" + "x" * 1024]})
    assert provisioner_store.read(store, "profile", "web")["arguments"] == {"a": "x" * 1024}


# --- over HTTP ---


@pytest.fixture
def api(api_server, store):
    return api_server


def form(server, method: str, path: str, fields: dict) -> tuple[int, dict]:
    """A URL-encoded form body, as a browser or curl -d sends it."""
    data = urllib.parse.urlencode(fields).encode()
    return call(server, method, path, raw=data,
                headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip


@pytest.mark.parametrize("kind", ["userdata", "script"])
def test_texts_over_http(api, kind):
    text = TEXTS[kind]
    assert call(api, "POST", f"/provisioner/{kind}", {"name": "one", "data": text}) == (
        200, {"message": f"{kind} 'one' added", "name": "one"}
    )  # fmt: skip
    assert form(api, "POST", f"/provisioner/{kind}", {"name": "two", "data": text})[0] == 200
    status, listed = call(api, "GET", f"/provisioner/{kind}?limit=on")
    assert status == 200 and [(r["name"], r["text"]) for r in listed] == [("one", text)]
    status, info = call(api, "GET", f"/provisioner/{kind}/two")
    assert status == 200 and info["text"] == text and info["profiles"] == []
    assert form(api, "PUT", f"/provisioner/{kind}/two", {"data": text + "\n"})[0] == 200
    assert call(api, "GET", f"/provisioner/{kind}/two")[1]["text"] == text + "\n"
    assert call(api, "DELETE", f"/provisioner/{kind}/two") == (
        200, {"message": f"{kind} 'two' removed", "name": "two"}
    )  # fmt: skip
    assert call(api, "GET", f"/provisioner/{kind}/two") == (
        404, {"message": f"{kind} 'two' does not exist"}
    )  # fmt: skip


def test_profiles_over_http(api):
    call(api, "POST", "/provisioner/userdata", {"name": "hello", "data": HELLO})
    body = {"name": "web", "system_template": "small", "userdata": "hello",
            "arguments": "image=debian\nsize=10G\n"}  # fmt: skip
    assert call(api, "POST", "/provisioner/profile", body) == (
        200, {"message": "profile 'web' added", "name": "web"}
    )  # fmt: skip
    status, profile = call(api, "GET", "/provisioner/profile/web")
    assert status == 200 and profile["type"] == "provisioner"
    assert profile["arguments"] == {"image": "debian", "size": "10G"}
    assert form(api, "PUT", "/provisioner/profile/web", {"userdata": "", "arguments": ""})[0] == 200
    status, profile = call(api, "GET", "/provisioner/profile/web")
    assert (profile["userdata"], profile["arguments"]) == (None, {})
    form(api, "POST", "/provisioner/profile", {"name": "app", "profile_type": "ova",
                                               "ova": "appliance"})  # fmt: skip
    assert [p["name"] for p in call(api, "GET", "/provisioner/profile")[1]] == ["app", "web"]
    assert call(api, "GET", "/provisioner") == (200, {
        "system": 1, "network": 1, "storage": 0, "userdata": 1, "script": 0, "ova": 1,
        "profile": 2,
    })  # fmt: skip
    assert call(api, "DELETE", "/provisioner/profile/web")[0] == 200
    assert [p["name"] for p in call(api, "GET", "/provisioner/profile")[1]] == ["app"]


@pytest.mark.parametrize(
    "method, path, body, status, reason",
    [
        ("POST", "/provisioner/userdata", {"name": "u", "data": "#cloud-config\n- a\n"}, 400,
         "userdata 'u': #cloud-config must be a YAML mapping (key: value), not a list"),
        ("POST", "/provisioner/userdata", {"name": "u", "data": "#cloud-config\na: [\n"}, 400,
         "userdata 'u' is not valid YAML on line 3"),
        ("POST", "/provisioner/userdata", {"name": "u"}, 400, "parameter 'data' is required"),
        ("POST", "/provisioner/userdata", {"name": "u", "data": "#!/bin/sh\n" + "x" * 262144},
         400, "parameter 'data' is larger than 262144 bytes"),
        ("POST", "/provisioner/script", {"name": "s", "data": "def f(:\n"}, 400,
         "script 's' does not compile: invalid syntax (line 1)"),
        ("POST", "/provisioner/script", {"name": "a b", "data": SCRIPT}, 400,
         "invalid script name 'a b'"),
        ("PUT", "/provisioner/script/nope", {"data": SCRIPT}, 404, "script 'nope' does not exist"),
        ("DELETE", "/provisioner/userdata/nope", None, 404, "userdata 'nope' does not exist"),
        ("POST", "/provisioner/profile", {"name": "p", "system_template": "big"}, 404,
         "system template 'big' does not exist"),
        ("POST", "/provisioner/profile", {"name": "p"}, 400,
         "profile 'p' needs a system template"),
        ("POST", "/provisioner/profile", {"name": "p", "profile_type": "x"}, 400,
         "parameter 'profile_type' must be one of provisioner, ova"),
        ("POST", "/provisioner/profile", {"name": "p", "system_template": "small",
                                          "arguments": "a=1\na=2"}, 400,
         "script argument 'a' is given more than once"),
        ("POST", "/provisioner/profile", {"name": "p", "system_template": "sm all"}, 400,
         "invalid system template name 'sm all'"),
        ("PUT", "/provisioner/profile/nope", {"profile_type": "ova"}, 404,
         "profile 'nope' does not exist"),
        ("GET", "/provisioner/profile/nope", None, 404, "profile 'nope' does not exist"),
    ],
)  # fmt: skip
def test_refusals_over_http_change_nothing(api, zk, method, path, body, status, reason):
    before = tree(zk)
    answer = call(api, method, path, body)
    assert answer[0] == status and reason in answer[1]["message"], answer
    assert tree(zk) == before


def test_a_used_userdata_is_not_removed_over_http(api, zk):
    call(api, "POST", "/provisioner/userdata", {"name": "hello", "data": HELLO})
    call(api, "POST", "/provisioner/profile", {"name": "web", "system_template": "small",
                                               "userdata": "hello"})  # fmt: skip
    before = tree(zk)
    assert call(api, "DELETE", "/provisioner/userdata/hello") == (
        409, {"message": "userdata 'hello' is used by profile web"}
    )  # fmt: skip
    assert tree(zk) == before


def test_records_need_the_api_key(api):
    for path in ("/provisioner", "/provisioner/userdata", "/provisioner/profile/web"):
        assert call(api, "GET", path, key=None)[0] == 401
