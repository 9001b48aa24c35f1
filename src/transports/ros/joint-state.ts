/**
 * The model's state as the node reads it from sensor_msgs/JointState: the position of one robot
 * joint per state dimension, in the manifest's order (`ros.state_joint_names`, else the manifest's
 * state names).
 */
import { printable } from '../../errors.js';
import { jointStateProblem, type InputProblem } from './input.js';
import type { RosJointState } from './messages.js';

export class StateJoints {
  /** The state joints' latest finite positions, in the manifest's order (0 until seen). */
  readonly positions: Float64Array;
  /** Each state joint's name to its dimension: made once, not per message. */
  readonly #index: ReadonlyMap<string, number>;
  readonly #seen: Uint8Array;
  #missing: number;

  /** `names`: the robot's joint of each state dimension (none before a model is loaded). */
  constructor(names: readonly string[]) {
    this.#index = new Map(names.map((name, i) => [name, i]));
    this.positions = new Float64Array(names.length);
    this.#seen = new Uint8Array(names.length);
    this.#missing = names.length;
  }

  /** Every state joint has had a finite position. */
  get complete(): boolean {
    return this.#missing === 0;
  }

  /**
   * Take the state joints' positions of `m`. A message that gives none of them, or a non-finite
   * position (the joint keeps its last finite one), goes to `drop`; other joints are ignored.
   */
  read(m: RosJointState, drop: (problem: InputProblem, what: string) => void): void {
    const problem = jointStateProblem(m, this.#index);
    if (problem !== undefined) {
      drop(problem, 'message on ~/in/joint_states');
      return;
    }
    const count = Math.min(m.name.length, m.position.length);
    for (let i = 0; i < count; i++) {
      const index = this.#index.get(m.name[i] ?? '');
      const value = m.position[i];
      if (index === undefined || value === undefined) continue;
      if (!Number.isFinite(value)) {
        // A failing encoder must not go unnoticed.
        drop(
          {
            kind: 'joint positions',
            detail: `joint ${printable(m.name[i] ?? '')} position ${value} is not finite (its last finite position kept)`,
          },
          'value on ~/in/joint_states',
        );
        continue;
      }
      this.positions[index] = value;
      if (this.#seen[index] === 0) {
        this.#seen[index] = 1;
        this.#missing--;
      }
    }
  }
}
