export * from './api.js';
export * from './input.js';
export * from './load.js';
export * from './messages.js';
export * from './node.js';
export * from './options.js';
export * from './params.js';
export * from './run.js';
