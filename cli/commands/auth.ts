// `kiln login`, `kiln logout` and `kiln target`: the saved API URL, token and space.

import { parseCommand } from "../args.js";
import { ApiClient } from "../client/api.js";
import { loadConfig, saveConfig } from "../client/config.js";
import { ask, askSecret, canPrompt } from "../client/prompt.js";
import { findSpace, session } from "../client/session.js";
import type { Space, Token } from "../client/types.js";
import type { Command } from "../command.js";
import { CliError } from "../errors.js";
import { note, ok, output, printFields, printJson } from "../output/print.js";

async function value(
  given: string | undefined,
  flag: string,
  question: string,
  secret = false,
): Promise<string> {
  if (given !== undefined && given !== "") return given;
  if (!canPrompt()) throw new CliError("KILN_CLI_USAGE", `kiln login: ${flag} is required`);
  const answer = secret ? await askSecret(question) : await ask(question);
  if (answer === "") throw new CliError("KILN_CLI_USAGE", `kiln login: ${flag} is required`);
  return answer;
}

export const loginCommand: Command = {
  summary: "log in to a Cloud Controller and save the token",
  usage: "-a URL -u USER -p PASSWORD [-s SPACE]",
  async run(argv) {
    const { flags: f } = parseCommand(
      "login",
      argv,
      {
        api: { type: "string", short: "a" },
        user: { type: "string", short: "u" },
        password: { type: "string", short: "p" },
        space: { type: "string", short: "s" },
      },
      0,
      0,
    );
    const saved = loadConfig();
    const api = await value(f.api ?? saved.api, "-a URL", "API URL: ");
    if (!/^https?:\/\/[^/]/.test(api)) {
      throw new CliError("KILN_CLI_USAGE", `kiln login: -a ${JSON.stringify(api)} is not an http(s) URL`);
    }
    const user = await value(f.user, "-u USER", "User: ");
    const password = await value(f.password, "-p PASSWORD", "Password: ", true);
    const anon = new ApiClient({ api });
    const token = await anon.json<Token>("POST", "/v3/tokens", {
      body: { username: user, password },
      auth: false,
    });
    if (typeof token?.token !== "string") {
      throw new CliError("KILN_CLI_API_RESPONSE", `POST ${api}/v3/tokens: no token in the answer`);
    }
    const client = new ApiClient({ api, token: token.token });
    const config = { api: anon.api, token: token.token, user: token.user?.name ?? user } as ReturnType<
      typeof loadConfig
    >;
    if (f.space !== undefined) {
      const sp = await findSpace(client, f.space);
      config.space = { name: sp.name, guid: sp.guid };
    } else {
      const spaces = await client.list<Space>("/v3/spaces?per_page=5000");
      const only = spaces.length === 1 ? spaces[0] : undefined;
      const keep = spaces.find((sp) => sp.guid === saved.space?.guid);
      const chosen = only ?? (saved.api === anon.api ? keep : undefined);
      if (chosen !== undefined) config.space = { name: chosen.name, guid: chosen.guid };
    }
    saveConfig(config);
    ok(`Logged in to ${config.api} as ${config.user}`);
    if (config.space !== undefined) ok(`Targeted space ${config.space.name}`);
    else note("No space targeted: run kiln target -s SPACE");
    return 0;
  },
};

export const logoutCommand: Command = {
  summary: "revoke the saved token and forget it",
  usage: "",
  async run(argv) {
    parseCommand("logout", argv, {}, 0, 0);
    const config = loadConfig();
    if (config.api !== undefined && config.token !== undefined) {
      try {
        await new ApiClient({ api: config.api, token: config.token }).delete("/v3/tokens/current");
      } catch (err) {
        // The token is forgotten either way; an expired one is already dead.
        if (!(err instanceof CliError && err.code === "KILN_CLI_NOT_LOGGED_IN")) {
          note(`kiln: the token could not be revoked: ${(err as Error).message}`);
        }
      }
    }
    delete config.token;
    delete config.space;
    saveConfig(config);
    ok("Logged out");
    return 0;
  },
};

export const targetCommand: Command = {
  summary: "show the API, user and space, or target a space with -s",
  usage: "[-s SPACE] [--json]",
  async run(argv) {
    const { flags: f } = parseCommand(
      "target",
      argv,
      { space: { type: "string", short: "s" }, json: { type: "boolean" } },
      0,
      0,
    );
    if (f.space !== undefined) {
      const s = session();
      const sp = await findSpace(s.client, f.space);
      s.config.space = { name: sp.name, guid: sp.guid };
      saveConfig(s.config);
    }
    const config = loadConfig();
    const shown = { api: config.api ?? null, user: config.user ?? null, space: config.space?.name ?? null };
    if (output(f.json).json) printJson(shown);
    else
      printFields([
        ["API", shown.api ?? "(none: kiln login -a URL)"],
        ["user", config.token === undefined ? "(not logged in)" : shown.user],
        ["space", shown.space ?? "(none: kiln target -s SPACE)"],
      ]);
    return 0;
  },
};
