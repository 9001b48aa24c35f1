/**
 * Tasks run one at a time, in the order they were given: each after every one given before it has
 * settled, whether that one resolved or rejected; a failure reaches only its own caller. A
 * pipeline's inferences share its sessions and buffers; a socket takes one send at a time.
 */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  /**
   * `task` after every task given before it; settles as `task` does.
   *
   * @example const chunk = await queue.run(() => inferNow(obs));
   */
  run<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(task);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /** Resolves when every task given so far has settled (never rejects). */
  async idle(): Promise<void> {
    await this.#tail;
  }
}
