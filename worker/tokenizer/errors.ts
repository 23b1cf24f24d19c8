/**
 * Why the chat template refused a conversation. The tokenizer knows no HTTP: worker/api/template.ts maps
 * these to the API's 400s. `message` is what a client reads, `code` is for code (and tests) to branch on.
 */
export type TokenizerErrorCode =
  /** A message's content is not a string. */
  | "content_not_string"
  /** A role the template has no place for. */
  | "unsupported_role"
  /** `prefix` on a message other than the last one, or on a non-assistant message. */
  | "misplaced_prefix"
  /** System messages only, or none at all. */
  | "no_user_message"
  /** After the system messages, the first turn is the assistant's. */
  | "first_turn_not_user"
  /** The last turn is the assistant's without `prefix`: there is nothing to answer. */
  | "last_turn_not_user"
  /** A tool result that follows no assistant tool_calls turn. */
  | "misplaced_tool_message";

export class TokenizerError extends Error {
  override readonly name = "TokenizerError";

  constructor(
    readonly code: TokenizerErrorCode,
    message: string,
  ) {
    super(message);
  }
}
