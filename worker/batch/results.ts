/**
 * The lines of a batch's output and error files (OpenAI's shape):
 *   {"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error": null}
 * A succeeded line goes to the output file; a line answered with an error status goes to the error file
 * with the same body an interactive request gets; a line never run (the batch was cancelled or expired)
 * has `response: null` and `error: {code, message}`.
 */
import type { ApiError, ErrorBody } from "../errors";

const lineId = () => `batch_req_${crypto.randomUUID().replaceAll("-", "")}`;

export function responseLine(
  customId: string | null,
  statusCode: number,
  requestId: string | null,
  body: unknown,
): string {
  return JSON.stringify({
    id: lineId(),
    custom_id: customId,
    response: { status_code: statusCode, request_id: requestId, body },
    error: null,
  });
}

/** A line refused before it reached the API (validation): the 400 an interactive request would get. */
export function refusedLine(customId: string | null, err: ApiError): string {
  const body: ErrorBody = err.body();
  return responseLine(customId, err.status, null, body);
}

export type NotRunCode = "batch_cancelled" | "batch_expired" | "line_failed";

export function notRunLine(customId: string | null, code: NotRunCode, message: string): string {
  return JSON.stringify({ id: lineId(), custom_id: customId, response: null, error: { code, message } });
}
