import type { RawFrame } from '../ingest/index.js';
import { renderScene } from './render.js';
import { renderWrist, WRIST_SPAN } from './wrist.js';
import { Rng } from '../util/rng.js';
import {
  distance,
  sampleScene,
  stepTowards,
  WORLD,
  type Scene,
  type TaskKind,
  type Vec2,
} from './world.js';

export interface TabletopOptions {
  /** Seed of this episode's scene. */
  readonly seed: number;
  /** Camera resolution in pixels. */
  readonly cameraWidth?: number;
  readonly cameraHeight?: number;
  /** The episode fails after this many control steps. */
  readonly maxSteps?: number;
  /** Force a task form; random otherwise. */
  readonly taskKind?: TaskKind;
}

const DEFAULTS = { cameraWidth: 128, cameraHeight: 128, maxSteps: 60 } as const;

/** What a policy sees at one control step. */
export interface Observation {
  readonly image: RawFrame;
  /** End-effector position [x, y] in table units. */
  readonly state: Float32Array;
  readonly instruction: string;
  readonly step: number;
}

/**
 * The built-in 2D tabletop: coloured blocks seen from above, an end effector driven by absolute
 * position targets, one language task per episode. Seeded and deterministic.
 */
export class TabletopSim {
  readonly scene: Scene;
  readonly maxSteps: number;
  readonly cameraWidth: number;
  readonly cameraHeight: number;
  #effector: Vec2;
  #steps = 0;
  #success = false;
  readonly #pixels: Uint8Array;
  #wristPixels: Uint8Array | undefined;

  constructor(options: TabletopOptions) {
    this.cameraWidth = options.cameraWidth ?? DEFAULTS.cameraWidth;
    this.cameraHeight = options.cameraHeight ?? DEFAULTS.cameraHeight;
    this.maxSteps = options.maxSteps ?? DEFAULTS.maxSteps;
    this.scene = sampleScene(new Rng(options.seed), options.taskKind);
    this.#effector = this.scene.start;
    this.#pixels = new Uint8Array(this.cameraWidth * this.cameraHeight * 3);
    this.#success = this.#atGoal();
  }

  get effector(): Vec2 {
    return this.#effector;
  }
  get steps(): number {
    return this.#steps;
  }
  get success(): boolean {
    return this.#success;
  }
  get done(): boolean {
    return this.#success || this.#steps >= this.maxSteps;
  }

  /** Render the camera frame and read the robot state. The image buffer is reused between calls. */
  observe(): Observation {
    renderScene(
      this.scene.blocks,
      this.#effector,
      this.cameraWidth,
      this.cameraHeight,
      this.#pixels,
    );
    return {
      image: {
        kind: 'raw',
        width: this.cameraWidth,
        height: this.cameraHeight,
        encoding: 'rgb8',
        data: this.#pixels,
      },
      state: Float32Array.of(this.#effector.x, this.#effector.y),
      instruction: this.scene.task.instruction,
      step: this.#steps,
    };
  }

  /**
   * Render the wrist camera (a view centred on the end effector, `span` table units across, at
   * the tabletop camera's resolution). The image buffer is reused between calls.
   */
  wristImage(span: number = WRIST_SPAN): RawFrame {
    this.#wristPixels ??= new Uint8Array(this.cameraWidth * this.cameraHeight * 3);
    renderWrist(
      this.scene.blocks,
      this.#effector,
      this.cameraWidth,
      this.cameraHeight,
      this.#wristPixels,
      span,
    );
    return {
      kind: 'raw',
      width: this.cameraWidth,
      height: this.cameraHeight,
      encoding: 'rgb8',
      data: this.#wristPixels,
    };
  }

  /**
   * Apply one action: an absolute target position [x, y]; the effector moves at most
   * WORLD.maxStep. Returns whether the episode is over.
   */
  step(action: ArrayLike<number>): boolean {
    if (this.done) return true;
    const x = action[0];
    const y = action[1];
    if (x === undefined || y === undefined || !Number.isFinite(x) || !Number.isFinite(y)) {
      throw new RangeError(
        `Expected a finite [x, y] action but received [${String(x)}, ${String(y)}]`,
      );
    }
    this.#effector = stepTowards(this.#effector, { x, y });
    this.#steps++;
    if (this.#atGoal()) this.#success = true;
    return this.done;
  }

  #atGoal(): boolean {
    return distance(this.#effector, this.scene.task.goal) <= WORLD.successRadius;
  }
}
