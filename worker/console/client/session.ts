/**
 * Secrets live in sessionStorage only: gone when the tab closes, never in a cookie or a URL, and not
 * shared with other tabs. The admin token and the API key have separate slots.
 */
export type Slot = "api-key" | "admin-token";

const name = (slot: Slot) => `moe-edge.console.${slot}`;

export const session = {
  get(slot: Slot): string | null {
    try {
      return sessionStorage.getItem(name(slot));
    } catch {
      return null; // storage disabled: the user signs in again on reload
    }
  },
  set(slot: Slot, value: string): void {
    try {
      sessionStorage.setItem(name(slot), value);
    } catch {
      // keep working for this page view
    }
  },
  clear(slot: Slot): void {
    try {
      sessionStorage.removeItem(name(slot));
    } catch {
      // nothing stored
    }
  },
};
