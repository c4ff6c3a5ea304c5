/** Types of scripts/chart.mjs (a plain script so that it runs without a build). */
export declare const CHART_DIR: string;
export declare const DEPLOY_FILE: string;
export declare function renderDeploy(major?: 3 | 4): Promise<string>;
export declare function renderReadme(): Promise<string>;
