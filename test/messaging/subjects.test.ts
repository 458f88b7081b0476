// Subject names and the token check of the parameterised ones.
import t from "tap";
import { MessagingError } from "../../messaging/errors.js";
import * as subjects from "../../messaging/subjects.js";

t.test("fixed subjects match the design", async (t) => {
  t.equal(subjects.ROUTER_REGISTER, "router.register");
  t.equal(subjects.ROUTER_UNREGISTER, "router.unregister");
  t.equal(subjects.ROUTER_START, "router.start");
  t.equal(subjects.ROUTER_GREET, "router.greet");
  t.equal(subjects.DEA_DISCOVER, "dea.discover");
  t.equal(subjects.DEA_STOP, "dea.stop");
  t.equal(subjects.DEA_UPDATE, "dea.update");
  t.equal(subjects.DEA_HEARTBEAT, "dea.heartbeat");
  t.equal(subjects.DEA_ADVERTISE, "dea.advertise");
  t.equal(subjects.DROPLET_EXITED, "droplet.exited");
  t.equal(subjects.CC_HM_REQUESTS, "cc.hm.requests");
  t.same(subjects.KV_BUCKETS, ["kiln_apps", "kiln_routes", "kiln_spaces", "kiln_users", "kiln_services"]);
  t.equal(subjects.STREAM_EVENTS, "KILN_EVENTS");
  t.equal(subjects.STREAM_LOGS, "KILN_LOGS");
  t.equal(subjects.OBJECT_STORE_BLOBS, "kiln_blobs");
  t.same(subjects.STREAM_SUBJECTS.KILN_LOGS, ["logs.*"]);
});

t.test("parameterised subjects", async (t) => {
  t.equal(subjects.deaStage("dea-1"), "dea.dea-1.stage");
  t.equal(subjects.deaStart("7f3a9c"), "dea.7f3a9c.start");
  t.equal(subjects.logs("0b5e-app"), "logs.0b5e-app");
  t.equal(subjects.events("app.create".replace(".", "_")), "events.app_create");
});

t.test("a token that would change the subject is refused", async (t) => {
  for (const bad of ["", "a.b", "*", "a*", ">", "a>", "a b", "a\tb", "a\nb", "\u00a0", "x\u2003", "\u007f"]) {
    for (const fn of [subjects.deaStage, subjects.deaStart, subjects.logs, subjects.events]) {
      t.throws(() => fn(bad), { code: "KILN_MSG_BAD_SUBJECT_TOKEN" }, `${fn.name}(${JSON.stringify(bad)})`);
    }
  }
  t.throws(() => subjects.logs("x".repeat(257)), MessagingError);
  t.ok(subjects.isValidToken("app_GUID-1:é"));
});
