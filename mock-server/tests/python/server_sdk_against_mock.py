"""The official Stream Chat Python server SDK (PyPI `stream-chat`, pinned in requirements.txt)
driven against chatstorm-mock the way a chat app's backend drives the real service: every call
checks its answer (fields and values, not only the status), every refused call its error code.

Run by mock-server/tests/python_sdk.rs in two phases around the WebSocket clients it connects:

  setup   users and channels, before the clients connect (ann then watches the channel)
  calls   updates, members, messages, reads, users, app settings, rate limits, channel delete,
          while ann watches the channel and bob is connected without watching it; the Rust test
          then checks the events the two received.

Environment: CHATSTORM_MOCK_URL, CHATSTORM_API_KEY, CHATSTORM_API_SECRET, CHATSTORM_RUN (a
prefix that keeps the ids of one run apart). The last line is "N passed, M failed"; the exit
status is 0 only when nothing failed.
"""

import os
import sys
import traceback

from stream_chat import StreamChat
from stream_chat.base.exceptions import StreamAPIException

RUN = os.environ["CHATSTORM_RUN"]
CLIENT = StreamChat(
    api_key=os.environ["CHATSTORM_API_KEY"],
    api_secret=os.environ["CHATSTORM_API_SECRET"],
    base_url=os.environ["CHATSTORM_MOCK_URL"],
    timeout=10.0,
)

ANN, BOB, CARL, DAVE, EVE, FRANK = (f"{RUN}-{n}" for n in ("ann", "bob", "carl", "dave", "eve", "frank"))
CHANNEL_ID = f"{RUN}-room"
SOLO_ID = f"{RUN}-solo"

passed = 0
failed = 0


def step(name):
    """Runs the decorated function as one named step, counting it passed or failed."""

    def run(fn):
        global passed, failed
        try:
            fn()
            passed += 1
            print(f"ok   {name}", flush=True)
        except Exception:  # noqa: BLE001 - every failure is reported, then the next step runs
            failed += 1
            print(f"FAIL {name}", flush=True)
            traceback.print_exc(file=sys.stdout)
        return fn

    return run


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def refused(call, status, code, text=None):
    """The call must fail with this HTTP status and Stream error code (and message text)."""
    try:
        call()
    except StreamAPIException as e:
        check(e.status_code == status, f"HTTP {e.status_code}, want {status}: {e.response_text}")
        check(e.error_code == code, f"code {e.error_code}, want {code}: {e.response_text}")
        if text is not None:
            check(text in e.error_message, f"message {e.error_message!r} lacks {text!r}")
        return e
    raise AssertionError(f"the call succeeded; want HTTP {status} code {code}")


def room():
    return CLIENT.channel("messaging", CHANNEL_ID)


def setup():
    @step("upsert_users answers each user by id")
    def _():
        r = CLIENT.upsert_users(
            [
                {"id": ANN, "name": "Ann Rowe"},
                {"id": BOB, "name": "Bob"},
                {"id": CARL, "name": "Carl"},
                {"id": DAVE, "name": "Dave", "role": "user"},
                {"id": EVE, "name": "Eve"},
                {"id": FRANK, "name": "Frank"},
            ]
        )
        check(set(r["users"]) == {ANN, BOB, CARL, DAVE, EVE, FRANK}, f"users: {list(r['users'])}")
        check(r["users"][ANN]["name"] == "Ann Rowe", r["users"][ANN])

    @step("channel.create(user_id) without members: created_by is that user, no members")
    def _():
        ch = CLIENT.channel("messaging", SOLO_ID, {"topic": "solo"})
        r = ch.create(DAVE)
        check(r["channel"]["id"] == SOLO_ID, r["channel"])
        check(r["channel"]["created_by"]["id"] == DAVE, r["channel"]["created_by"])
        check(r["channel"]["topic"] == "solo", r["channel"])
        check(r["channel"]["member_count"] == 0, r["channel"])
        check(r["members"] == [], r["members"])

    @step("channel.create(user_id) with members: created_by is the given user, not the first member")
    def _():
        ch = CLIENT.channel("messaging", CHANNEL_ID, {"members": [ANN, CARL], "name": "Room"})
        r = ch.create(DAVE)
        check(r["channel"]["created_by"]["id"] == DAVE, r["channel"]["created_by"])
        check(sorted(m["user_id"] for m in r["members"]) == sorted([ANN, CARL]), r["members"])
        check(r["channel"]["name"] == "Room", r["channel"])

    @step("a server-side create without a creator is refused (code 4)")
    def _():
        ch = CLIENT.channel("messaging", f"{RUN}-nobody", {"members": [ANN]})
        refused(
            lambda: ch.query(),
            400,
            4,
            "either data.created_by or data.created_by_id must be provided when using server side auth.",
        )

    @step("created_by and created_by_id together are refused (code 4)")
    def _():
        ch = CLIENT.channel("messaging", f"{RUN}-both", {"created_by_id": DAVE})
        refused(lambda: ch.create(DAVE), 400, 4, "cannot set both data.created_by and data.created_by_id.")


def calls():
    state = {}

    @step("channel.update replaces the custom data and answers channel and members")
    def _():
        r = room().update({"name": "Renamed", "color": "blue"})
        check(r["channel"]["name"] == "Renamed", r["channel"])
        check(r["channel"]["color"] == "blue", r["channel"])
        check(r["channel"]["cid"] == f"messaging:{CHANNEL_ID}", r["channel"])
        check(r["channel"]["created_by"]["id"] == DAVE, r["channel"]["created_by"])
        check(len(r["members"]) == 2, r["members"])

    @step("add_members adds bob")
    def _():
        r = room().add_members([BOB])
        ids = sorted(m["user_id"] for m in r["members"])
        check(ids == sorted([ANN, BOB, CARL]), ids)
        bob = next(m for m in r["members"] if m["user_id"] == BOB)
        check(bob["user"]["id"] == BOB and bob["channel_role"] == "channel_member", bob)
        check(r["channel"]["member_count"] == 3, r["channel"])

    @step("update_partial sets and unsets fields")
    def _():
        r = room().update_partial(to_set={"color": "red", "level": 3}, to_unset=["name"])
        check(r["channel"]["color"] == "red" and r["channel"]["level"] == 3, r["channel"])
        check("name" not in r["channel"], r["channel"])

    @step("adding members to a distinct channel is refused (code 17)")
    def _():
        ch = CLIENT.channel("messaging", data={"members": [ANN, BOB]})
        ch.create(ANN)
        check(ch.id.startswith("!members-"), ch.id)
        refused(
            lambda: ch.add_members([CARL]),
            403,
            17,
            "cannot add members to the distinct channel they don't belong to",
        )

    @step("send_message as a non-member succeeds server-side")
    def _():
        mid = f"{RUN}-m1"
        r = room().send_message({"id": mid, "text": "hello from the backend"}, EVE)
        m = r["message"]
        check(m["id"] == mid and m["text"] == "hello from the backend", m)
        check(m["user"]["id"] == EVE and m["cid"] == f"messaging:{CHANNEL_ID}", m)
        check(m["type"] == "regular" and m["html"] == "<p>hello from the backend</p>\n", m)
        state["mid"] = mid

    @step("mark_read as the same non-member succeeds too (server-side skips membership)")
    def _():
        r = room().mark_read(EVE)
        check(r["event"]["type"] == "message.read", r["event"])
        check(r["event"]["user"]["id"] == EVE, r["event"])
        check(r["event"]["cid"] == f"messaging:{CHANNEL_ID}", r["event"])

    @step("server-side send_message and mark_read without a user are refused (code 4)")
    def _():
        refused(
            lambda: CLIENT.post(f"channels/messaging/{CHANNEL_ID}/message", data={"message": {"text": "x"}}),
            400,
            4,
            "either message.user or message.user_id must be provided when using server side auth.",
        )
        refused(
            lambda: CLIENT.post(f"channels/messaging/{CHANNEL_ID}/read", data={}),
            400,
            4,
            "either user or user_id must be provided when using server side auth.",
        )

    @step("get_message returns the message")
    def _():
        r = CLIENT.get_message(state["mid"])
        check(r["message"]["id"] == state["mid"], r["message"])
        check(r["message"]["text"] == "hello from the backend", r["message"])
        check(r["message"]["user"]["id"] == EVE, r["message"])

    @step("get_message of an unknown id: 404, code 16")
    def _():
        refused(lambda: CLIENT.get_message(f"{RUN}-nope"), 404, 16)

    @step("remove_members removes bob")
    def _():
        r = room().remove_members([BOB])
        ids = sorted(m["user_id"] for m in r["members"])
        check(ids == sorted([ANN, CARL]), ids)
        check(r["channel"]["member_count"] == 2, r["channel"])

    @step("query_users filters by id, sorts, limits")
    def _():
        r = CLIENT.query_users({"id": {"$in": [ANN, BOB, CARL]}}, {"id": -1})
        check([u["id"] for u in r["users"]] == [CARL, BOB, ANN], [u["id"] for u in r["users"]])
        r = CLIENT.query_users({"id": {"$in": [ANN, BOB, CARL]}}, {"id": 1}, limit=2, offset=1)
        check([u["id"] for u in r["users"]] == [BOB, CARL], [u["id"] for u in r["users"]])
        r = CLIENT.query_users({"id": ANN})
        check(len(r["users"]) == 1 and r["users"][0]["name"] == "Ann Rowe", r["users"])
        check(r["users"][0]["role"] == "user" and "created_at" in r["users"][0], r["users"])

    @step("query_users understands $autocomplete and custom fields, refuses unknown operators")
    def _():
        r = CLIENT.query_users({"$and": [{"name": {"$autocomplete": "row"}}, {"id": {"$in": [ANN, BOB]}}]})
        check([u["id"] for u in r["users"]] == [ANN], r["users"])
        refused(lambda: CLIENT.query_users({"id": {"$regex": "x"}}), 400, 4)

    @step("deactivate_user sets deactivated_at; the user leaves default queries")
    def _():
        r = CLIENT.deactivate_user(EVE)
        check(r["user"]["id"] == EVE and r["user"].get("deactivated_at"), r["user"])
        check(CLIENT.query_users({"id": EVE})["users"] == [], "deactivated user listed")
        r = CLIENT.query_users({"id": EVE}, include_deactivated_users=True)
        check([u["id"] for u in r["users"]] == [EVE], r["users"])

    @step("a deactivated user cannot send messages or be upserted")
    def _():
        refused(lambda: room().send_message({"text": "no dice"}, EVE), 400, 4, "was deactivated")
        refused(lambda: CLIENT.upsert_user({"id": EVE, "name": "new name"}), 400, 4, "was deactivated")

    @step("reactivate_user clears deactivated_at; reactivating an active user is refused")
    def _():
        r = CLIENT.reactivate_user(EVE, name="Eve again")
        check(r["user"]["id"] == EVE and "deactivated_at" not in r["user"], r["user"])
        check(r["user"]["name"] == "Eve again", r["user"])
        refused(lambda: CLIENT.reactivate_user(EVE), 400, 4, "is not deactivated")
        r = room().send_message({"text": "I am back"}, EVE)
        check(r["message"]["user"]["id"] == EVE, r["message"])

    @step("deactivate_users runs as a task whose result lists the users")
    def _():
        r = CLIENT.deactivate_users([EVE])
        check(len(r["task_id"]) == 36, r)
        t = CLIENT.get_task(r["task_id"])
        check(t["status"] == "completed", t)
        check([u["id"] for u in t["result"]["users"]] == [EVE], t["result"])
        check(all("deactivated_at" in u for u in t["result"]["users"]), t["result"])
        CLIENT.reactivate_user(EVE)

    @step("delete_user sets deleted_at; the user leaves queries")
    def _():
        r = CLIENT.delete_user(CARL, mark_messages_deleted=False)
        check(r["user"]["id"] == CARL and r["user"].get("deleted_at"), r["user"])
        check(CLIENT.query_users({"id": CARL})["users"] == [], "deleted user listed")

    @step("delete_users runs as a task whose result is ok per user")
    def _():
        r = CLIENT.delete_users([FRANK], "soft", messages="soft")
        check(len(r["task_id"]) == 36, r)
        t = CLIENT.get_task(r["task_id"])
        check(t["status"] == "completed" and t["result"][FRANK] == {"status": "ok"}, t)
        refused(lambda: CLIENT.delete_users([BOB], "hard"), 400, 4)

    @step("deactivate, reactivate and delete an unknown user: 404, code 16")
    def _():
        refused(lambda: CLIENT.deactivate_user(f"{RUN}-ghost"), 404, 16)
        refused(lambda: CLIENT.reactivate_user(f"{RUN}-ghost"), 404, 16)
        refused(lambda: CLIENT.delete_user(f"{RUN}-ghost"), 404, 16)

    @step("get_app_settings answers the app with its channel-type configs")
    def _():
        r = CLIENT.get_app_settings()
        app = r["app"]
        check(isinstance(app["name"], str) and app["name"], app)
        cfg = app["channel_configs"]["messaging"]
        check(cfg["typing_events"] is True and cfg["read_events"] is True, cfg)
        check(cfg["max_message_length"] == 5000, cfg)
        check({"livestream", "team"} <= set(app["channel_configs"]), list(app["channel_configs"]))

    @step("get_rate_limits answers per platform and endpoint")
    def _():
        r = CLIENT.get_rate_limits()
        check({"server_side", "android", "ios", "web"} <= set(r), list(r))
        r = CLIENT.get_rate_limits(server_side=True, android=True)
        check("server_side" in r and "android" in r, list(r))
        check("ios" not in r and "web" not in r, list(r))
        r = CLIENT.get_rate_limits(server_side=True, android=True, endpoints=["GetRateLimits", "SendMessage"])
        check(len(r["android"]) == 2 and len(r["server_side"]) == 2, r)
        a = r["android"]["GetRateLimits"]
        s = r["server_side"]["GetRateLimits"]
        check(a["limit"] == a["remaining"], a)
        check(s["limit"] > s["remaining"], s)
        check(s["reset"] > 0 and isinstance(s["reset"], int), s)
        check(r["server_side"]["SendMessage"]["limit"] >= 1, r["server_side"])

    @step("updates of an unknown channel: 404, code 16")
    def _():
        ghost = CLIENT.channel("messaging", f"{RUN}-ghost")
        refused(lambda: ghost.update({"x": 1}), 404, 16)
        refused(lambda: ghost.delete(), 404, 16)

    @step("bob is added again, then the channel is deleted")
    def _():
        room().add_members([BOB])
        r = room().delete()
        ch = r["channel"]
        check(ch["cid"] == f"messaging:{CHANNEL_ID}" and ch.get("deleted_at"), ch)
        check(sorted(m["user_id"] for m in ch["members"]) == sorted([ANN, BOB, CARL]), ch["members"])

    @step("a deleted channel is gone")
    def _():
        refused(lambda: room().update({"x": 1}), 404, 16)


def main():
    phase = sys.argv[1] if len(sys.argv) > 1 else ""
    if phase == "setup":
        setup()
    elif phase == "calls":
        calls()
    else:
        print(f"usage: {sys.argv[0]} setup|calls", file=sys.stderr)
        return 2
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
