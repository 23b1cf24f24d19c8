/**
 * Why a request's tools, tool_choice or tool history were refused. This module knows no HTTP: the API maps
 * a ToolsError to the OpenAI/Mistral 400 (`param` is the JSON path of the offending field).
 */
export class ToolsError extends Error {
  override readonly name = "ToolsError";

  constructor(
    readonly param: string,
    message: string,
    /** "unsupported_parameter" for a valid request this API does not serve; else a plain invalid value. */
    readonly code: "invalid_value" | "unsupported_parameter" = "invalid_value",
  ) {
    super(message);
  }
}
