/**
 * The bridge server's client table: one state per ROUTER identity, least recently seen first, and
 * bounded (the least recently seen client with nothing queued is forgotten beyond the bound).
 */

/** What the server keeps of one client (ROUTER identity). */
export interface ClientState {
  readonly id: string;
  name: string | undefined;
  lastSeen: number;
  /** Infer requests of this client queued or running. */
  pending: number;
}

/** The clients a bridge server has seen, at most `maxClients` of them. */
export class ClientTable {
  readonly #clients = new Map<string, ClientState>();
  readonly #maxClients: number;
  readonly #forget: (id: string) => void;

  /**
   * @param maxClients - states kept at most.
   * @param forget - called with the id of an evicted client (to drop its pruning state).
   */
  constructor(maxClients: number, forget: (id: string) => void) {
    this.#maxClients = maxClients;
    this.#forget = forget;
  }

  /** Clients known. */
  get size(): number {
    return this.#clients.size;
  }

  /** The state of the client with this identity (new if unknown), marked as seen now. */
  touch(identity: Buffer): ClientState {
    const id = identity.toString('hex');
    let state = this.#clients.get(id);
    if (state === undefined) {
      state = { id, name: undefined, lastSeen: 0, pending: 0 };
      this.#clients.set(id, state);
      if (this.#clients.size > this.#maxClients) this.#evict();
    } else {
      // Map order is insertion order: move to the end, so the first entries are the least recent.
      this.#clients.delete(id);
      this.#clients.set(id, state);
    }
    state.lastSeen = Date.now();
    return state;
  }

  /** Forget the least recently seen client with nothing queued, and its pruning state. */
  #evict(): void {
    for (const [id, state] of this.#clients) {
      if (state.pending === 0) {
        this.#clients.delete(id);
        this.#forget(id);
        return;
      }
    }
  }
}
