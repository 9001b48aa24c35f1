/**
 * What replay reads from each mapped message, checked against the definition the bag declares.
 * A bag carries its own `ros2msg` text and messages are decoded with it, so a renamed field or a
 * different type would otherwise surface as `undefined` or a bigint deep inside the pipeline.
 */

import { printable } from '../../errors.js';
import { BagError } from './errors.js';
import type { parseSchema } from './schemas.js';
import { shortTypeName } from './schemas.js';

type Definition = ReturnType<typeof parseSchema>[number];

/** A field replay reads: a primitive type (as @foxglove/rosmsg names it) or a nested message. */
interface Need {
  readonly type: string | Readonly<Record<string, Need>>;
  readonly array: boolean;
  /** The type as a .msg file spells it, for messages. */
  readonly spelled: string;
}

const one = (type: string, spelled = type): Need => ({ type, array: false, spelled });
const many = (type: string): Need => ({ type, array: true, spelled: `${type}[]` });

const HEADER: Need = {
  type: { stamp: one('time', 'builtin_interfaces/Time') },
  array: false,
  spelled: 'std_msgs/Header',
};

/** The fields replay reads of each type a topic can be mapped to (short type names). */
const NEEDS: Readonly<Record<string, Readonly<Record<string, Need>>>> = {
  'sensor_msgs/Image': {
    header: HEADER,
    height: one('uint32'),
    width: one('uint32'),
    encoding: one('string'),
    is_bigendian: one('uint8'),
    step: one('uint32'),
    data: many('uint8'),
  },
  'sensor_msgs/CompressedImage': { header: HEADER, format: one('string'), data: many('uint8') },
  'sensor_msgs/JointState': { name: many('string'), position: many('float64') },
  'std_msgs/String': { data: one('string') },
  'std_msgs/Float32MultiArray': { data: many('float32') },
};

function declared(field: Definition['definitions'][number]): string {
  return `${field.type}${field.isArray === true ? '[]' : ''}`;
}

/**
 * Check that the definitions a bag declares for a topic's type carry every field replay reads,
 * with the type it needs (nested messages checked through their own definitions).
 *
 * @param type the channel's schema name, e.g. `sensor_msgs/msg/Image`
 * @param field the error field prefix, e.g. `topics.image.schema`
 * @throws {BagError} naming the topic, the field and the type expected.
 */
export function checkFields(
  definitions: readonly Definition[],
  type: string,
  topic: string,
  field: string,
): void {
  const needs = NEEDS[shortTypeName(type)];
  const [main] = definitions;
  if (needs === undefined || main === undefined) return;
  const byName = new Map<string, Definition>();
  for (const d of definitions.slice(1)) {
    if (d.name !== undefined) byName.set(shortTypeName(d.name), d);
  }
  const where = `the ${printable(type)} definition the bag declares for ${printable(topic)}`;
  const walk = (def: Definition, wanted: Readonly<Record<string, Need>>, path: string): void => {
    for (const [name, need] of Object.entries(wanted)) {
      const dotted = path === '' ? name : `${path}.${name}`;
      const expected = `${need.spelled} ${dotted}`;
      const f = def.definitions.find((d) => d.name === name && d.isConstant !== true);
      if (f === undefined) {
        throw new BagError(
          `Expected field ${expected} in ${where} but it has no field ${name} (fields: ${printable(def.definitions.map((d) => d.name).join(', ') || 'none')})`,
          { field: `${field}.${dotted}` },
        );
      }
      const nested = typeof need.type === 'object';
      const typeOk = nested ? f.isComplex === true : f.isComplex !== true && f.type === need.type;
      if (!typeOk || (f.isArray === true) !== need.array) {
        throw new BagError(
          `Expected field ${expected} in ${where} but it declares ${printable(declared(f))} ${dotted}`,
          { field: `${field}.${dotted}` },
        );
      }
      if (typeof need.type === 'object') {
        const inner = byName.get(shortTypeName(f.type));
        if (inner === undefined) {
          throw new BagError(
            `Expected a definition of ${printable(f.type)} (field ${dotted}) in ${where} but it has none`,
            { field: `${field}.${dotted}` },
          );
        }
        walk(inner, need.type, dotted);
      }
    }
  };
  walk(main, needs, '');
}
