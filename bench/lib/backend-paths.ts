// The paths the bench backend (backend-server.ts) answers, shared with the benches that load it.

/** Paths with a fixed body, by case. */
export const backendPaths = { tiny: "/", "16k": "/16k", "1m": "/1m" } as const;

/** Answers the names of the request's headers as a JSON array, in the order received. */
export const headersPath = "/_headers";
