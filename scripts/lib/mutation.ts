/** One planted bug of the mutation list (scripts/mutations.ts), run by scripts/mutate.ts. */
export interface Mutation {
  id: string;
  area: string;
  why: string;
  file: string;
  /** Each `find` must occur exactly once in the file. */
  edits: { find: string; replace: string }[];
  tests: string[];
}
