import { Rng } from '../util/rng.js';

/** A point or vector on the table, in table units: x to the right, y down (image convention), both in [0, 1]. */
export interface Vec2 {
  readonly x: number;
  readonly y: number;
}

export const COLOURS = {
  red: [220, 45, 45],
  green: [40, 165, 70],
  blue: [45, 85, 225],
  yellow: [235, 200, 35],
  purple: [150, 65, 190],
} as const satisfies Record<string, readonly [number, number, number]>;

export type ColourName = keyof typeof COLOURS;
export const COLOUR_NAMES = Object.keys(COLOURS) as readonly ColourName[];

export interface Block {
  readonly colour: ColourName;
  readonly centre: Vec2;
}

export type Relation = 'left' | 'right' | 'above' | 'below';
export const RELATIONS: readonly Relation[] = ['left', 'right', 'above', 'below'];

/** A task: an instruction, the block it names, and the point the end effector must reach. */
export type Task =
  | {
      readonly kind: 'reach';
      readonly instruction: string;
      readonly target: number;
      readonly goal: Vec2;
    }
  | {
      readonly kind: 'relation';
      readonly instruction: string;
      readonly target: number;
      readonly relation: Relation;
      readonly goal: Vec2;
    };

export type TaskKind = Task['kind'];
export const TASK_KINDS: readonly TaskKind[] = ['reach', 'relation'];

/** Geometry and dynamics of the tabletop; one place for every constant of the world. */
export const WORLD = {
  blocks: 4,
  blockHalfSize: 0.055,
  effectorRadius: 0.04,
  /** Largest distance the end effector moves in one control step (table units). */
  maxStep: 0.05,
  /** An episode succeeds when the effector is this close to the goal. */
  successRadius: 0.05,
  relationOffset: 0.16,
  minBlockSpacing: 0.22,
  minStartDistance: 0.25,
  margin: 0.12,
} as const;

const RELATION_OFFSETS: Record<Relation, Vec2> = {
  left: { x: -1, y: 0 },
  right: { x: 1, y: 0 },
  above: { x: 0, y: -1 },
  below: { x: 0, y: 1 },
};

export function distance(a: Vec2, b: Vec2): number {
  return Math.hypot(a.x - b.x, a.y - b.y);
}

/** The instruction text for a task on a block of `colour`. */
export function instructionFor(colour: ColourName, relation?: Relation): string {
  switch (relation) {
    case undefined:
      return `move to the ${colour} block`;
    case 'left':
    case 'right':
      return `move to the ${relation} of the ${colour} block`;
    case 'above':
    case 'below':
      return `move ${relation} the ${colour} block`;
  }
}

/** A tabletop scene: blocks, the end effector's start and a task. */
export interface Scene {
  readonly blocks: readonly Block[];
  readonly start: Vec2;
  readonly task: Task;
}

/** Sample a scene whose task is `kind` (or random), deterministically from `rng`. */
export function sampleScene(rng: Rng, kind?: TaskKind): Scene {
  for (;;) {
    const colours = rng.shuffle(COLOUR_NAMES).slice(0, WORLD.blocks);
    const blocks: Block[] = [];
    for (const colour of colours) {
      let centre: Vec2;
      do {
        centre = {
          x: rng.uniform(WORLD.margin, 1 - WORLD.margin),
          y: rng.uniform(WORLD.margin, 1 - WORLD.margin),
        };
      } while (blocks.some((b) => distance(b.centre, centre) < WORLD.minBlockSpacing));
      blocks.push({ colour, centre });
    }
    const target = rng.int(blocks.length);
    const block = blocks[target] as Block;
    const taskKind = kind ?? rng.pick(TASK_KINDS);
    let task: Task;
    if (taskKind === 'reach') {
      task = {
        kind: 'reach',
        instruction: instructionFor(block.colour),
        target,
        goal: block.centre,
      };
    } else {
      const relation = rng.pick(RELATIONS);
      const d = RELATION_OFFSETS[relation];
      const goal = {
        x: block.centre.x + d.x * WORLD.relationOffset,
        y: block.centre.y + d.y * WORLD.relationOffset,
      };
      const inside = goal.x > 0.06 && goal.x < 0.94 && goal.y > 0.06 && goal.y < 0.94;
      const clear = blocks.every((b, i) => i === target || distance(b.centre, goal) > 0.12);
      if (!inside || !clear) continue;
      task = {
        kind: 'relation',
        instruction: instructionFor(block.colour, relation),
        target,
        relation,
        goal,
      };
    }
    let start: Vec2;
    do {
      start = { x: rng.uniform(0.05, 0.95), y: rng.uniform(0.05, 0.95) };
    } while (distance(start, task.goal) < WORLD.minStartDistance);
    return { blocks, start, task };
  }
}

/** Move `from` towards `to` by at most WORLD.maxStep, staying on the table. */
export function stepTowards(from: Vec2, to: Vec2): Vec2 {
  const tx = clamp01(to.x);
  const ty = clamp01(to.y);
  const dx = tx - from.x;
  const dy = ty - from.y;
  const d = Math.hypot(dx, dy);
  if (d <= WORLD.maxStep) return { x: tx, y: ty };
  const s = WORLD.maxStep / d;
  return { x: from.x + dx * s, y: from.y + dy * s };
}

function clamp01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}
