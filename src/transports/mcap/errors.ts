import { InputError, type VlaErrorOptions } from '../../errors.js';

/**
 * A bag that cannot be read: a corrupt chunk, an unsupported compression, a mapped topic whose
 * schema or message encoding the node cannot decode. `field` names the file, topic or record.
 */
export class BagError extends InputError {
  constructor(message: string, options: VlaErrorOptions = {}) {
    super(message, options);
    this.name = 'BagError';
  }
}
