// Spaces and users: list spaces, and the admin's create-space, create-user and add-member.
import { parseCommand } from "../args.js";
import { findSpace, q, session } from "../client/session.js";
import type { Space } from "../client/types.js";
import type { Command } from "../command.js";
import { CliError } from "../errors.js";
import { ok, output, printJson, printTable } from "../output/print.js";

export const spacesCommand: Command = {
  summary: "list the spaces you are a member of (all, for an admin)",
  usage: "[--json]",
  async run(argv) {
    const { flags } = parseCommand("spaces", argv, { json: { type: "boolean" } }, 0, 0);
    const s = session();
    const spaces = await s.client.list<Space>("/v3/spaces?per_page=5000");
    if (output(flags.json).json) printJson(spaces);
    else
      printTable(
        ["name", "targeted", "created"],
        spaces.map((sp) => [sp.name, sp.guid === s.config.space?.guid ? "*" : "", sp.created_at]),
      );
    return 0;
  },
};

export const createSpaceCommand: Command = {
  summary: "create a space (admin)",
  usage: "NAME",
  async run(argv) {
    const { args } = parseCommand("create-space", argv, {}, 1, 1);
    const s = session();
    const sp = await s.client.post<Space>("/v3/spaces", { name: args[0] });
    ok(`space ${sp?.name ?? args[0]}: created`);
    return 0;
  },
};

export const createUserCommand: Command = {
  summary: "create a user (admin)",
  usage: "NAME -p PASSWORD [--admin]",
  async run(argv) {
    const { flags, args } = parseCommand(
      "create-user",
      argv,
      { password: { type: "string", short: "p" }, admin: { type: "boolean" } },
      1,
      1,
    );
    if (flags.password === undefined || flags.password === "") {
      throw new CliError("KILN_CLI_USAGE", "kiln create-user: -p PASSWORD is required");
    }
    const s = session();
    await s.client.post("/v3/users", {
      username: args[0],
      password: flags.password,
      admin: flags.admin === true,
    });
    ok(`user ${args[0]}: created${flags.admin === true ? " (admin)" : ""}`);
    return 0;
  },
};

export const addMemberCommand: Command = {
  summary: "let a user see and change a space (admin)",
  usage: "SPACE USER",
  async run(argv) {
    const { args } = parseCommand("add-member", argv, {}, 2, 2);
    const [spaceName = "", user = ""] = args;
    const s = session();
    const sp = await findSpace(s.client, spaceName);
    await s.client.post(`/v3/spaces/${q(sp.guid)}/members`, { username: user });
    ok(`${user}: member of space ${sp.name}`);
    return 0;
  },
};
