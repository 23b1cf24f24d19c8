/** The schema uses something outside the supported subset or past a bound; `keyword` names it, `path` is where. */
export class SchemaError extends Error {
  constructor(
    readonly keyword: string,
    readonly path: string,
    detail: string,
  ) {
    super(`response_format schema: ${detail} (keyword '${keyword}' at ${path || "#"})`);
  }
}
